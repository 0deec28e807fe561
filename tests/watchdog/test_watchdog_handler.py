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
from backup_functions.ledger import Ledger, SilenceItem
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


def _sqs_record(message_id: str, detail_type: str, detail: dict[str, object]) -> dict[str, object]:
    envelope = {"source": "backup.requests", "detail-type": detail_type, "detail": detail}
    return {"messageId": message_id, "receiptHandle": message_id, "body": json.dumps(envelope), "attributes": {}}


def test_a_silence_event_from_its_queue_is_recorded_and_announced_and_a_malformed_one_is_rejected(
    lambda_env: Env,
) -> None:
    silence = {
        "silence_id": "s-handler",
        "target": "db-0-*",
        "expires_at": (NOW + timedelta(hours=2)).isoformat(),
        "requested_by": "alice@example.com",
        "reason": "upgrade",
    }
    batch = {
        "Records": [
            _sqs_record("m-1", "Silence Requested", silence),
            _sqs_record("m-2", "Silence Requested", {**silence, "silence_id": "s-bad", "target": None}),
            _sqs_record(
                "m-3", "Backup Requested", {"request_id": "q", "target": "db-0-0", "requested_by": "a", "reason": "r"}
            ),
        ]
    }

    response = watchdog_handler.handler(batch, LambdaContext(function_name="wd-watchdog"))

    assert response["batchItemFailures"] == [{"itemIdentifier": "m-2"}, {"itemIdentifier": "m-3"}]
    [recorded] = _silences(lambda_env)
    assert (recorded.silence_id, recorded.target, recorded.expires_at) == (
        "s-handler",
        "db-0-*",
        NOW + timedelta(hours=2),
    )
    assert recorded.owed == {}  # the announcement went out and was cleared
    assert [(m.kind, m.phase) for m in lambda_env.inbox()] == [("silence", "open")]


def _silences(env: Env) -> list[SilenceItem]:
    return Ledger(TABLE, boto3.client("dynamodb")).silences.not_expired(NOW)
