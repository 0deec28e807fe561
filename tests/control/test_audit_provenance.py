"""Nothing is believed on an event's word: forged, misplaced, replayed and future-dated agent events never
produce a good backup and never move a deadline (design rule 8; docs/threat-model.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from backup_contracts import ledger as keys
from backup_contracts.naming import agent_event_source, backup_object_key

from .conftest import Aws, eventbridge_event
from .test_audit import BODY, DB_1, T0, deliver, multipart, run_events, run_item, store

pytestmark = pytest.mark.integration

DB_2 = agent_event_source("db-2")  # another host of the fleet (it owns the shop-* targets)


def good_run(aws: Aws, **changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    started, succeeded = run_events(aws, **changes)
    store(aws, succeeded)
    return started, succeeded


def target_state(aws: Aws, target: str = "orders-0") -> dict[str, Any] | None:
    return aws.ledger.client.get(keys.target_pk(target), keys.STATE_SK)


def nothing_recorded(aws: Aws, target: str = "orders-0") -> bool:
    return aws.ledger.client.query(keys.target_pk(target)) == []


def test_an_event_sent_by_another_agent_records_nothing(aws, auditor, lambda_context, function_logs):
    started, succeeded = good_run(aws)
    for event in (started, succeeded):
        event["source"] = DB_2  # db-2 sends events naming db-1 and db-1's target

    response = deliver(lambda_context, started, succeeded)

    assert response == {"batchItemFailures": []}  # refused, not retried
    assert nothing_recorded(aws)
    refusals = [line for line in function_logs.lines() if line["message"].startswith("audit: event refused")]
    assert len(refusals) == 2
    assert "was sent by agent db-2" in refusals[0]["reason"]


def test_an_agent_reporting_on_another_hosts_target_records_nothing(aws, auditor, lambda_context):
    key = backup_object_key("db-2", "orders-0", "r1", T0, "pgdump.zst")  # in db-2's own prefix
    started, succeeded = run_events(aws, key=key)
    for event in (started, succeeded):
        event["source"] = DB_2
        event["detail"]["agent"] = "db-2"
        event["detail"]["key"] = key
    store(aws, succeeded)

    deliver(lambda_context, started, succeeded)

    assert nothing_recorded(aws)


def test_a_target_the_fleet_does_not_know_gets_no_ledger_state(aws, auditor, lambda_context):
    started, succeeded = good_run(aws, target="not-in-fleet")

    deliver(lambda_context, started, succeeded)

    assert nothing_recorded(aws, "not-in-fleet")


def test_another_targets_object_is_not_a_good_backup(aws, auditor, lambda_context):
    other_key = backup_object_key("db-1", "orders-1", "r1", T0, "pgdump.zst")
    started, succeeded = run_events(aws)
    succeeded["detail"]["key"] = other_key
    aws.put_backup_object(other_key, BODY, run_id="r1", written_at=T0 + timedelta(minutes=3))

    deliver(lambda_context, started, succeeded)

    assert run_item(aws)["state"] == "unverified"
    assert any("is not this run's" in p for p in run_item(aws)["verification"]["problems"])
    assert "last_good_at" not in (target_state(aws) or {})


def test_a_week_old_object_replayed_as_a_new_run_is_not_a_good_backup(aws, auditor, lambda_context):
    old_start, old_done = good_run(aws, run="old")
    deliver(lambda_context, old_start, old_done)
    later = T0 + timedelta(days=7)
    started, succeeded = run_events(aws, run="replay", started=later)
    succeeded["detail"]["key"] = old_done["detail"]["key"]  # points at last week's object

    deliver(lambda_context, started, succeeded)

    replay = run_item(aws, run="replay", started=later)
    assert replay["state"] == "unverified"
    problems = " ".join(replay["verification"]["problems"])
    assert "belongs to run old" in problems
    assert "outside the run" in problems
    assert (target_state(aws) or {})["last_good_run_id"] == "old"


def test_a_multipart_object_whose_manifest_names_another_sha256_is_not_a_good_backup(aws, auditor, lambda_context):
    parts = [b"a" * 5 * 1024 * 1024, b"b" * 1000]
    started, succeeded = run_events(aws, body=b"".join(parts))
    succeeded["detail"]["s3_checksum_sha256"] = multipart(aws, succeeded, parts)
    succeeded["detail"]["sha256"] = "f" * 64  # the parts match; the whole object's digest claimed is another

    deliver(lambda_context, started, succeeded)

    assert run_item(aws)["state"] == "unverified"
    assert any("manifest's sha256" in p for p in run_item(aws)["verification"]["problems"])


def test_a_future_dated_success_is_not_a_good_backup_and_moves_no_deadline(aws, auditor, lambda_context):
    started, succeeded = good_run(aws)
    deliver(lambda_context, started, succeeded)
    rpo_before = (target_state(aws) or {})[keys.WATCH_DEADLINE]
    future = T0 + timedelta(days=3)
    _, f_succeeded = good_run(aws, run="future", started=future)

    deliver(lambda_context, eventbridge_event(DB_1, "Backup Succeeded", f_succeeded["detail"], T0 + timedelta(hours=1)))

    state = target_state(aws) or {}
    assert state[keys.WATCH_DEADLINE] == rpo_before
    assert state["last_good_run_id"] == "r1"
    future_run = run_item(aws, run="future", started=future)
    assert future_run["state"] == "unverified"
    assert any("after the audit's clock" in p for p in future_run["verification"]["problems"])


def test_a_future_dated_start_or_heartbeat_is_refused(aws, auditor, lambda_context):
    future = T0 + timedelta(days=3)
    started, _ = run_events(aws, run="future", started=future)
    heartbeat = {"agent": "db-1", "version": "1", "targets": ["orders-0"], "sent_at": future.isoformat()}

    deliver(
        lambda_context,
        eventbridge_event(DB_1, "Backup Started", started["detail"], T0),
        eventbridge_event(DB_1, "Agent Heartbeat", heartbeat, T0),
    )

    assert nothing_recorded(aws)
    assert aws.ledger.client.get(keys.agent_pk("db-1"), keys.STATE_SK) is None


def test_a_future_dated_failure_is_recorded_at_the_audits_time(aws, auditor, lambda_context):
    from .test_audit import failed_event

    future = T0 + timedelta(days=3)
    event = failed_event(aws, started=future)
    event["time"] = T0.isoformat()

    deliver(lambda_context, event)

    state = target_state(aws) or {}
    assert state["last_failure_at"] <= keys.iso(T0)  # never later than when the audit heard of it
