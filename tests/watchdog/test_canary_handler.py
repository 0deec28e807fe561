"""The watchdog Lambda sends the canary at its hour through the real SNS adapters (moto), and only then."""

from __future__ import annotations

from datetime import UTC, datetime
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


@pytest.mark.parametrize(
    ("now", "expected"),
    [(datetime(2026, 3, 4, 9, 2, tzinfo=UTC), True), (datetime(2026, 3, 4, 10, 2, tzinfo=UTC), False)],
)
def test_the_watchdog_tick_at_the_canary_hour_sends_it_to_the_topic(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, now: datetime, expected: bool
) -> None:
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(env.fleet.model_dump(mode="json")), encoding="utf-8")
    for name, value in {
        "LEDGER_TABLE": TABLE, "BUS_NAME": "bus", "BUCKET_NAME": "bucket", "ALERT_TOPIC_ARN": env.topic_arn,
        "KMS_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/x", "FLEET_FILE": str(fleet_file),
        "JOB_QUEUE_URL_PREFIX": "https://sqs.us-east-1.amazonaws.com/123456789012/",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    boto3.client("events").create_event_bus(Name="bus")
    settings_module.settings.cache_clear()
    watchdog_handler.configure(watchdog_handler.build_runtime(clock=SimulatedClock(now)))
    try:
        summary = watchdog_handler.handler({"source": "aws.events"}, LambdaContext(function_name="wd-watchdog"))
    finally:
        settings_module.settings.cache_clear()
        watchdog_handler.configure(None)
    canaries = [m for m in env.inbox() if m.kind == "canary"]
    assert summary["canary"]["sent"] is expected
    assert len(canaries) == (1 if expected else 0)
