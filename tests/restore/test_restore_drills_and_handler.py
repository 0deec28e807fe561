"""Drills dispatched by the restore tick, their outcome on the target state, and the Lambda entry point."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from backup_contracts import ledger as keys
from backup_contracts.ledger import iso
from backup_contracts.schedule import Schedule
from backup_functions.restore import handler as restore_handler

from .conftest import T0, World

pytestmark = pytest.mark.integration

_slot = Schedule("rate(7 days)").latest_slot_at_or_before(T0)
assert _slot is not None
DRILL_SLOT: datetime = _slot


def _drill_end(world: World, job_id: str, **extra: Any) -> dict[str, Any]:
    """The drill's end as its agent reports it."""
    return world.report(
        job_id, started_at=iso(T0 + timedelta(minutes=1)), finished_at=iso(T0 + timedelta(minutes=2)), **extra
    )


def test_a_due_drill_restores_the_latest_good_backup_into_the_scratch_destination(world: World) -> None:
    backup = world.seed_backup("app", started=T0 - timedelta(hours=5))

    report = world.coordinator.tick()

    drill_id = f"drill-app-{DRILL_SLOT:%Y%m%dT%H%M%SZ}"
    assert report.drills_dispatched == [drill_id]
    [job] = world.jobs("db-host")
    assert (job.kind, job.mode, job.trigger, job.target, job.destination) == (
        "drill",
        "drill",
        "drill",
        "app-drill",
        "app-drill",
    )
    assert job.source is not None
    assert job.source.run_id == backup.run_id
    assert job.source.presigned_url is not None


def test_a_drill_slot_is_dispatched_once_however_many_ticks_run(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=5))
    world.coordinator.tick()
    world.clock.advance(timedelta(hours=1))

    again = world.coordinator.tick()

    assert again.drills_dispatched == []
    assert len(world.jobs("db-host")) == 1


def test_the_next_drill_slot_dispatches_the_next_drill(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=5))
    world.coordinator.tick()
    world.clock.advance(timedelta(days=7))

    report = world.coordinator.tick()

    assert report.drills_dispatched == [f"drill-app-{DRILL_SLOT + timedelta(days=7):%Y%m%dT%H%M%SZ}"]


def test_a_succeeded_drill_records_its_rto_on_the_target_state(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=5))
    [drill_id] = world.coordinator.tick().drills_dispatched

    outcome = world.agent_event(
        "Restore Succeeded", _drill_end(world, drill_id, duration_s=42.5, verification={"ok": True})
    )

    assert (outcome.action, outcome.drill) == ("succeeded", True)
    state = world.ledger.client.get(keys.target_pk("app"), keys.STATE_SK)
    assert state is not None
    assert state["last_drill_ok"] is True
    assert state["last_drill_rto_s"] == 42.5
    assert state["last_drill_at"] == iso(T0 + timedelta(minutes=2))
    assert state["last_drill_id"] == drill_id
    assert world.alerts() == []  # a good drill is quiet


def test_a_failed_drill_alerts_and_records_the_failure(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=5))
    [drill_id] = world.coordinator.tick().drills_dispatched

    world.agent_event(
        "Restore Failed",
        _drill_end(
            world, drill_id, stage="verify-restore", error="integrity_check: 3 errors", destination_touched=True
        ),
    )

    [alert] = world.alerts()
    assert "RESTORE DRILL FAILED" in alert.subject
    assert alert.facts["kind"] == "drill-failed"
    assert "integrity_check" in alert.body
    state = world.ledger.client.get(keys.target_pk("app"), keys.STATE_SK)
    assert state is not None
    assert state["last_drill_ok"] is False
    assert "integrity_check" in state["last_drill_error"]


def test_a_drill_without_any_good_backup_fails_at_once_and_alerts(world: World) -> None:
    report = world.coordinator.tick()

    assert report.drills_failed == [f"drill-app-{DRILL_SLOT:%Y%m%dT%H%M%SZ}"]
    assert world.all_jobs() == []
    [alert] = world.alerts()
    assert "RESTORE DRILL FAILED" in alert.subject
    assert "no good backup" in alert.body
    state = world.ledger.client.get(keys.target_pk("app"), keys.STATE_SK)
    assert state is not None
    assert state["last_drill_ok"] is False


# --------------------------------------------------------------------------- the Lambda entry point


class Context:
    function_name = "rt-restore"
    memory_limit_in_mb = 256
    aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:rt-restore"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _record(body: str) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:rt-restore-events",
        "awsRegion": "us-east-1",
    }


@pytest.fixture
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    restore_handler.configure(restore_handler.Runtime(world.coordinator))
    yield world
    restore_handler.configure(None)


def test_handler_reports_only_the_malformed_record_as_a_batch_failure(wired: World) -> None:
    wired.seed_backup("app", started=T0 - timedelta(hours=5))
    good = _record(
        wired.envelope(
            "backup.requests",
            "Restore Requested",
            {"restore_id": "r-h", "target": "app", "destination": "app-clone", "requested_by": "a", "reason": "b"},
        )
    )
    bad = _record("{not json")

    response = restore_handler.handler({"Records": [good, bad]}, Context())

    assert response["batchItemFailures"] == [{"itemIdentifier": bad["messageId"]}]
    assert [j.restore_id for j in wired.jobs("db-host")] == ["r-h"]


def test_handler_runs_the_tick_for_a_scheduled_event(wired: World) -> None:
    wired.seed_backup("app", started=T0 - timedelta(hours=5))
    scheduled = {
        "version": "0",
        "id": "e1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-22T12:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/rt-restore-tick"],
        "detail": {},
    }

    response = restore_handler.handler(scheduled, Context())

    assert len(response["drills_dispatched"]) == 1
    assert json.loads(wired.jobs("db-host")[0].model_dump_json())["kind"] == "drill"
