"""The control plane's AWS call counts, at a scale small enough for CI that still proves the shape:
the dispatcher sends 10 jobs per SQS call; the watchdog's DynamoDB calls depend on what is overdue,
never on how many healthy targets there are. Counts, not time (bench/control_plane.py measures 10,000)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.control_plane import (  # noqa: E402 - needs the repository root on sys.path
    fake_aws,
    generate_fleet,
    measure_dispatcher,
    measure_watchdog,
)
from local_pipeline.resources import provision  # noqa: E402


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def test_dispatcher_tick_sends_ten_jobs_per_sqs_call() -> None:
    fleet = generate_fleet(300, 3)
    with fake_aws() as session:
        all_due, none_due = measure_dispatcher(fleet, session, provision(fleet, session))

    assert all_due.calls["sqs.SendMessageBatch"] == 30
    assert all_due.service("sqs") <= 300 // 10 + 1
    assert none_due.service("sqs") == 0
    assert "dynamodb.Scan" not in {**all_due.calls, **none_due.calls}


@pytest.mark.parametrize("targets", [100, 1000])
def test_watchdog_tick_with_10_overdue_costs_the_same_dynamodb_calls_whatever_the_fleet_size(targets: int) -> None:
    fleet = generate_fleet(targets, 10)
    with fake_aws() as session:
        alerting, quiet = measure_watchdog(fleet, session, provision(fleet, session), overdue=10)

    # 4 shard queries + 1 incidents query + 1 GetItem of the dispatcher's tick marker (is it running?),
    # 1 query of the silences in force (only because something pages), then one conditional put per incident.
    # each alert is owed by its incident's PutItem and cleared once sent (the outbox): one UpdateItem per alert
    assert alerting.calls == {
        "dynamodb.Query": 6,
        "dynamodb.GetItem": 1,
        "dynamodb.PutItem": 10,
        "sns.Publish": 10,
        "dynamodb.UpdateItem": 10,
    }
    assert alerting.service("dynamodb") <= 27
    # Next tick, the incidents are open and no reminder is due: reads only.
    assert quiet.calls == {"dynamodb.Query": 5, "dynamodb.GetItem": 1}
