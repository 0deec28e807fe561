"""The Lambda entry point: settings from the environment, a tick at the clock's now, metrics out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from wd_env import TABLE, Env

from backup_functions import settings as settings_module
from backup_functions.watchdog import handler as watchdog_handler
from local_pipeline.clock import SimulatedClock
from local_pipeline.runner import LambdaContext

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
def lambda_env(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(env.fleet.model_dump(mode="json")), encoding="utf-8")
    for name, value in {
        "LEDGER_TABLE": TABLE,
        "BUS_NAME": "bus",
        "BUCKET_NAME": "bucket",
        "ALERT_TOPIC_ARN": env.topic_arn,
        "KMS_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/x",
        "JOB_QUEUE_URL_PREFIX": "https://sqs.us-east-1.amazonaws.com/123456789012/",
        "FLEET_FILE": str(fleet_file),
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("events").create_event_bus(Name="bus")
    settings_module.settings.cache_clear()
    watchdog_handler.configure(watchdog_handler.build_runtime(clock=SimulatedClock(NOW)))
    yield env
    settings_module.settings.cache_clear()
    watchdog_handler.configure(None)


def test_handler_ticks_alerts_and_emits_the_overdue_targets_metric(
    lambda_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    lambda_env.good_backup("db-0-0", NOW - timedelta(hours=27))

    summary = watchdog_handler.handler({"source": "aws.events"}, LambdaContext(function_name="wd-watchdog"))
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]

    assert summary["overdue_targets"] == 1
    assert summary["opened"] == ["target:db-0-0#rpo"]
    assert [(m.kind, m.phase) for m in lambda_env.inbox()] == [("rpo", "open")]
    assert emf[-1]["OverdueTargets"] == [1.0]
