"""Audit: runs with start and end, idempotent under duplicates and reordering, object verification,
alerts at once on failure, partial batch failures, GFS retention tiers (the keep-set and Object Lock:
test_keep_last.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_contracts import ledger as keys
from backup_contracts.naming import agent_event_source, backup_object_key
from backup_functions.audit import handler as audit_handler
from local_pipeline.resources import create_ledger_table
from local_pipeline.runner import LambdaContext

from .conftest import Aws, eventbridge_event, sqs_batch

pytestmark = pytest.mark.integration

DB_1 = agent_event_source("db-1")  # the source of every event agent db-1 sends

T0 = datetime(2026, 11, 16, 2, 0, 5, tzinfo=UTC)
BODY = b"-- PostgreSQL database dump\n" + b"x" * 2048


def run_events(
    aws: Aws, *, run: str = "r1", target: str = "orders-0", started: datetime = T0, body: bytes = BODY, **succeeded: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    key = backup_object_key("db-1", target, run, started, "pgdump.zst")
    base = {
        "job_id": keys.scheduled_job_id(target, started.replace(minute=0, second=0)),
        "run_id": run,
        "target": target,
        "agent": "db-1",
        "started_at": started.isoformat(),
        "bucket": aws.bucket,
        "key": key,
    }
    done = {
        **base,
        "finished_at": (started + timedelta(minutes=3)).isoformat(),
        "bytes_in": 10_000,
        "bytes_stored": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "engine": "postgresql",
        "format": "pg_dump-custom",
        "compression": "zstd",
        "duration_s": 180.0,
        **succeeded,
    }
    return (
        eventbridge_event(DB_1, "Backup Started", base, started),
        eventbridge_event(DB_1, "Backup Succeeded", done, started + timedelta(minutes=3)),
    )


def failed_event(aws: Aws, *, run: str = "rf", target: str = "orders-0", started: datetime = T0) -> dict[str, Any]:
    detail = {
        "job_id": keys.scheduled_job_id(target, started.replace(minute=0, second=0)),
        "run_id": run,
        "target": target,
        "agent": "db-1",
        "started_at": started.isoformat(),
        "bucket": aws.bucket,
        "key": backup_object_key("db-1", target, run, started, "pgdump.zst"),
        "finished_at": (started + timedelta(minutes=1)).isoformat(),
        "stage": "dump",
        "exit_code": 1,
        "error": "pg_dump exited with status 1",
        "stderr_tail": "pg_dump: error: connection to server failed: FATAL: password authentication failed\n"
        "pg_dump: detail: PGPASSWORD=hunter2 was rejected",
    }
    return eventbridge_event(DB_1, "Backup Failed", detail, started + timedelta(minutes=1))


def deliver(ctx: LambdaContext, *events: dict[str, Any] | str) -> dict[str, Any]:
    """The events as one SQS batch, handled when the last of them was sent (the audit's clock follows)."""
    bodies = [e if isinstance(e, str) else json.dumps(e) for e in events]
    sent = [datetime.fromisoformat(e["time"]) for e in events if isinstance(e, dict)]
    clock = audit_handler.runtime.get().auditor.clock
    if sent and max(sent) > clock.now():
        clock.set(max(sent))  # type: ignore[attr-defined]
    return audit_handler.handler(sqs_batch(bodies), ctx)


def store(aws: Aws, succeeded: dict[str, Any], body: bytes = BODY, **kwargs: Any) -> None:
    """The object as the agent uploaded it, during the run."""
    detail = succeeded["detail"]
    kwargs.setdefault("run_id", detail["run_id"])
    aws.put_backup_object(detail["key"], body, written_at=datetime.fromisoformat(detail["finished_at"]), **kwargs)


def multipart(aws: Aws, succeeded: dict[str, Any], parts: list[bytes]) -> str:
    """The object and its manifest as the agent uploads them, during the run; its composite checksum."""
    detail = succeeded["detail"]
    written = datetime.fromisoformat(detail["finished_at"])
    return aws.put_multipart_object(detail["key"], parts, run_id=detail["run_id"], written_at=written)


def run_item(aws: Aws, run: str = "r1", target: str = "orders-0", started: datetime = T0) -> dict[str, Any]:
    item = aws.ledger.client.get(keys.target_pk(target), keys.run_sk(started, run))
    assert item is not None
    return item


def retention_tag(aws: Aws, key: str) -> str | None:
    tags = aws.session.client("s3").get_object_tagging(Bucket=aws.bucket, Key=key)["TagSet"]
    return next((t["Value"] for t in tags if t["Key"] == "retention"), None)


def test_started_then_succeeded_gives_one_run_with_start_and_end(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded)

    response = deliver(lambda_context, started, succeeded)

    assert response == {"batchItemFailures": []}
    runs = aws.ledger.client.query(keys.target_pk("orders-0"), keys.RUN_SK_PREFIX, newest_first=True)
    assert len(runs) == 1
    assert runs[0]["state"] == "succeeded"
    assert runs[0]["started_at"] == keys.iso(T0)
    assert runs[0]["finished_at"] == keys.iso(T0 + timedelta(minutes=3))
    assert runs[0]["verification"]["ok"] is True


def test_good_backup_sets_last_good_and_moves_the_rpo_watch(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded)

    deliver(lambda_context, started, succeeded)

    state = aws.ledger.client.get(keys.target_pk("orders-0"), keys.STATE_SK)
    assert state is not None
    finished = T0 + timedelta(minutes=3)
    assert state["last_good_at"] == keys.iso(finished)
    assert state["last_good_run_id"] == "r1"
    assert state["last_good_bytes"] == len(BODY)
    assert state[keys.WATCH_KIND] == "rpo"
    assert state[keys.WATCH_DEADLINE] == keys.iso(finished + timedelta(hours=26))


def test_started_moves_the_job_to_started_with_an_end_watch(aws, auditor, lambda_context):
    started, _ = run_events(aws)

    deliver(lambda_context, started)

    job = aws.ledger.client.get(keys.target_pk("orders-0"), keys.job_sk(started["detail"]["job_id"]))
    assert job is not None
    assert job["state"] == "started"
    assert job[keys.WATCH_KIND] == "end"
    assert job[keys.WATCH_DEADLINE] == keys.iso(T0 + timedelta(minutes=120))


def test_ended_job_leaves_the_watch_index(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded)

    deliver(lambda_context, started, succeeded)

    job = aws.ledger.client.get(keys.target_pk("orders-0"), keys.job_sk(started["detail"]["job_id"]))
    assert job is not None
    assert job["state"] == "succeeded"
    assert keys.WATCH_DEADLINE not in job
    assert keys.WATCH_SHARD not in job


def test_duplicate_events_leave_the_ledger_identical(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded)
    deliver(lambda_context, started, succeeded)
    once = aws.scan()

    deliver(lambda_context, started, succeeded, succeeded, started)

    assert aws.scan() == once


def test_succeeded_before_started_gives_the_same_ledger(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded)
    deliver(lambda_context, started)
    deliver(lambda_context, succeeded)
    in_order = aws.scan()
    aws.session.client("dynamodb").delete_table(TableName=aws.table)
    _recreate_table(aws)

    deliver(lambda_context, succeeded)
    deliver(lambda_context, started)

    assert aws.scan() == in_order


def _recreate_table(aws: Aws) -> None:
    ddb = aws.session.client("dynamodb")
    create_ledger_table(ddb, aws.table)


def test_older_success_never_overwrites_a_newer_last_good(aws, auditor, lambda_context):
    later = T0 + timedelta(days=1)
    old_start, old_done = run_events(aws, run="old")
    new_start, new_done = run_events(aws, run="new", started=later)
    store(aws, old_done)
    store(aws, new_done)

    deliver(lambda_context, new_start, new_done)
    deliver(lambda_context, old_start, old_done)

    state = aws.ledger.client.get(keys.target_pk("orders-0"), keys.STATE_SK)
    assert state is not None
    assert state["last_good_run_id"] == "new"
    assert state["last_run_id"] == "new"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"bytes_stored": len(BODY) + 1}, "size is"),
        ({"sha256": "0" * 64}, "sha256 in object metadata"),
    ],
)
def test_object_not_matching_the_event_is_not_good_and_alerts(aws, auditor, lambda_context, change, problem):
    started, succeeded = run_events(aws, **change)
    store(aws, succeeded)

    deliver(lambda_context, started, succeeded)

    run = run_item(aws)
    assert run["state"] == "unverified"
    assert any(problem in p for p in run["verification"]["problems"])
    state = aws.ledger.client.get(keys.target_pk("orders-0"), keys.STATE_SK)
    assert state is not None
    assert "last_good_at" not in state
    received = aws.alerts()
    assert len(received) == 1
    assert "NOT VERIFIED" in received[0]["Subject"]
    assert "orders-0 on db-1" in received[0]["Subject"]


def test_object_without_sse_kms_is_not_counted(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded, sse=False)

    deliver(lambda_context, started, succeeded)

    assert run_item(aws)["state"] == "unverified"
    assert any("not SSE-KMS" in p for p in run_item(aws)["verification"]["problems"])


def test_object_under_another_kms_key_is_not_counted(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded, kms_key=aws.other_key_arn)

    deliver(lambda_context, started, succeeded)

    assert run_item(aws)["state"] == "unverified"
    assert any("not the pipeline's key" in p for p in run_item(aws)["verification"]["problems"])


def test_missing_object_is_not_counted(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)

    deliver(lambda_context, started, succeeded)

    assert run_item(aws)["state"] == "unverified"
    assert run_item(aws)["verification"]["object_found"] is False


def test_backup_failed_alerts_at_once_with_the_stderr_tail(aws, auditor, lambda_context):
    deliver(lambda_context, failed_event(aws))

    received = aws.alerts()
    assert len(received) == 1
    message = received[0]
    assert message["Subject"].startswith("[bp-test] BACKUP FAILED: orders-0 on db-1")
    assert "password authentication failed" in message["Message"]
    assert "hunter2" not in message["Message"]
    assert "backupctl backup-now orders-0" in message["Message"]
    facts = json.loads(message["MessageAttributes"]["alert"]["Value"])
    assert facts["kind"] == "failed"
    assert facts["run_id"] == "rf"


def test_backup_failed_records_run_job_and_incident(aws, auditor, lambda_context):
    event = failed_event(aws)
    deliver(lambda_context, event)

    run = run_item(aws, run="rf")
    assert run["state"] == "failed"
    assert run["stage"] == "dump"
    job = aws.ledger.client.get(keys.target_pk("orders-0"), keys.job_sk(event["detail"]["job_id"]))
    assert job is not None
    assert job["state"] == "failed"
    incident = aws.ledger.client.get(keys.INCIDENTS_PK, keys.incident_sk("target:orders-0", "failed"))
    assert incident is not None
    assert incident["last_notified_at"]


def test_duplicate_backup_failed_alerts_once(aws, auditor, lambda_context):
    event = failed_event(aws)

    deliver(lambda_context, event)
    deliver(lambda_context, event)

    assert len(aws.alerts()) == 1


def test_next_good_backup_resolves_the_failed_incident(aws, auditor, lambda_context):
    deliver(lambda_context, failed_event(aws))
    aws.alerts()
    started, succeeded = run_events(aws, run="r2", started=T0 + timedelta(hours=1))
    store(aws, succeeded)

    deliver(lambda_context, started, succeeded)

    assert aws.ledger.client.get(keys.INCIDENTS_PK, keys.incident_sk("target:orders-0", "failed")) is None
    received = aws.alerts()
    assert len(received) == 1
    assert received[0]["Subject"].startswith("[bp-test] RESOLVED: orders-0 on db-1")


def test_malformed_record_is_reported_and_the_others_processed(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded)
    bad_detail = eventbridge_event(DB_1, "Backup Started", {"run_id": "x"})

    response = deliver(lambda_context, started, "not json {", bad_detail, succeeded)

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}, {"itemIdentifier": "msg-2"}]}
    assert run_item(aws)["state"] == "succeeded"


def test_unknown_detail_type_is_a_failure_with_reason(aws, auditor, lambda_context, function_logs):
    event = eventbridge_event(DB_1, "Backup Exploded", {"run_id": "x"})

    response = deliver(lambda_context, event)

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    [rejection] = [line for line in function_logs.lines() if "malformed event rejected" in line["message"]]
    assert rejection["level"] == "ERROR"
    assert rejection["reason"] == "no contract for source='backup.agent.db-1' detail-type='Backup Exploded'"
    assert rejection["correlation_id"] == "x"  # the event's run id, set before the event was handled


def test_restore_events_are_skipped_cleanly(aws, auditor, lambda_context):
    detail = {
        "restore_id": "rs-1",
        "job_id": "j-1",
        "agent": "db-1",
        "source_target": "orders-0",
        "source_run_id": "r1",
        "destination": "orders-1",
        "mode": "clone",
        "started_at": T0.isoformat(),
    }

    response = deliver(lambda_context, eventbridge_event(DB_1, "Restore Started", detail))

    assert response == {"batchItemFailures": []}
    assert aws.scan() == []


def test_heartbeat_updates_agent_state_and_watch(aws, auditor, lambda_context):
    detail = {"agent": "db-1", "version": "0.1.0", "targets": ["orders-0"], "sent_at": T0.isoformat()}

    deliver(lambda_context, eventbridge_event(DB_1, "Agent Heartbeat", detail, T0))

    agent = aws.ledger.client.get(keys.agent_pk("db-1"), keys.STATE_SK)
    assert agent is not None
    assert agent["last_heartbeat_at"] == keys.iso(T0)
    assert agent[keys.WATCH_KIND] == "heartbeat"
    assert agent[keys.WATCH_DEADLINE] == keys.iso(T0 + timedelta(minutes=30))


def test_first_good_backup_of_month_is_tagged_monthly_then_daily(aws, auditor, lambda_context):
    first_start, first_done = run_events(aws, run="m1")
    second_start, second_done = run_events(aws, run="m2", started=T0 + timedelta(days=1))
    store(aws, first_done)
    store(aws, second_done)

    deliver(lambda_context, first_start, first_done)
    deliver(lambda_context, second_start, second_done)

    assert run_item(aws, run="m1")["retention_tag"] == "standard-monthly"
    assert run_item(aws, run="m2", started=T0 + timedelta(days=1))["retention_tag"] == "standard-daily"
    assert run_item(aws, run="m1")["retention_tier"] == "monthly"
    # both are among the target's newest keep_last good backups: kept, whatever their tier
    assert retention_tag(aws, first_done["detail"]["key"]) == "keep"
    assert retention_tag(aws, second_done["detail"]["key"]) == "keep"


def test_first_good_backup_of_next_week_is_weekly(aws, auditor, lambda_context):
    first_start, first_done = run_events(aws, run="w1")
    next_week = T0 + timedelta(days=7)
    second_start, second_done = run_events(aws, run="w2", started=next_week)
    store(aws, first_done)
    store(aws, second_done)

    deliver(lambda_context, first_start, first_done, second_start, second_done)

    assert run_item(aws, run="w2", started=next_week)["retention_tag"] == "standard-weekly"


def test_failed_run_never_claims_a_gfs_period(aws, auditor, lambda_context):
    deliver(lambda_context, failed_event(aws))
    started, succeeded = run_events(aws, run="after", started=T0 + timedelta(hours=2))
    store(aws, succeeded)

    deliver(lambda_context, started, succeeded)

    assert run_item(aws, run="after", started=T0 + timedelta(hours=2))["retention_tag"] == "standard-monthly"


def test_unverified_run_gets_no_retention_tag(aws, auditor, lambda_context):
    started, succeeded = run_events(aws, bytes_stored=1)
    store(aws, succeeded)

    deliver(lambda_context, started, succeeded)

    assert retention_tag(aws, succeeded["detail"]["key"]) is None


def test_multipart_object_is_verified_by_its_composite_checksum(aws, auditor, lambda_context):
    parts = [b"a" * 5 * 1024 * 1024, b"b" * 1000]
    whole = b"".join(parts)
    started, succeeded = run_events(aws, body=whole)
    succeeded["detail"]["s3_checksum_sha256"] = multipart(aws, succeeded, parts)

    deliver(lambda_context, started, succeeded)

    run = run_item(aws)
    assert run["state"] == "succeeded"
    assert run["verification"]["checksum_sources"] == ["s3-composite-checksum", "manifest"]
    assert aws.calls["s3.GetObject"] == 1  # the manifest; the object itself is never read


def test_multipart_object_with_other_parts_is_not_counted(aws, auditor, lambda_context):
    parts = [b"a" * 5 * 1024 * 1024, b"b" * 1000]
    started, succeeded = run_events(aws, body=b"".join(parts))
    multipart(aws, succeeded, parts)
    succeeded["detail"]["s3_checksum_sha256"] = (
        aws.put_multipart_object("elsewhere/other", [b"c" * 10]).split("-")[0] + "-2"
    )

    deliver(lambda_context, started, succeeded)

    assert run_item(aws)["state"] == "unverified"


def test_object_without_any_checksum_is_read_and_hashed(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded, metadata=False)

    deliver(lambda_context, started, succeeded)

    run = run_item(aws)
    assert run["state"] == "succeeded"
    assert run["verification"]["checksum_sources"] == ["content-read"]


def test_object_whose_content_differs_from_the_reported_sha256_is_not_counted(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded, body=b"X" * len(BODY), metadata=False)

    deliver(lambda_context, started, succeeded)

    run = run_item(aws)
    assert run["state"] == "unverified"
    assert any("content" in p for p in run["verification"]["problems"])


def test_large_object_without_a_checksum_is_not_counted(aws, auditor, lambda_context):
    auditor.config = dataclasses.replace(auditor.config, read_limit=100)
    started, succeeded = run_events(aws)
    store(aws, succeeded, metadata=False)

    deliver(lambda_context, started, succeeded)

    run = run_item(aws)
    assert run["state"] == "unverified"
    assert any("no checksum to compare" in p for p in run["verification"]["problems"])
    assert aws.calls["s3.GetObject"] == 0


def test_manifest_gets_the_same_retention_tag_as_its_backup(aws, auditor, lambda_context):
    started, succeeded = run_events(aws)
    store(aws, succeeded)
    aws.session.client("s3").put_object(
        Bucket=aws.bucket, Key=succeeded["detail"]["key"] + ".manifest.json", Body=b"{}"
    )

    deliver(lambda_context, started, succeeded)

    assert retention_tag(aws, succeeded["detail"]["key"] + ".manifest.json") == "keep"
    assert retention_tag(aws, succeeded["detail"]["key"]) == "keep"


def test_metrics_are_emitted_once_per_run(aws, auditor, lambda_context, capsys):
    started, succeeded = run_events(aws)
    store(aws, succeeded)

    deliver(lambda_context, started, succeeded)
    first = capsys.readouterr().out
    deliver(lambda_context, succeeded)
    second = capsys.readouterr().out

    emf = [json.loads(line) for line in first.splitlines() if line.startswith('{"_aws"')]
    assert emf, "no EMF metrics line printed"
    assert emf[-1]["BackupsSucceeded"] == [1.0]
    assert emf[-1]["BytesStored"] == [float(len(BODY))]
    assert "BackupsSucceeded" not in second


class FailingNotifier:
    def notify(self, alert: Any, *, dedup_id: str | None = None) -> str:
        raise RuntimeError("SNS is down")


def test_alert_that_could_not_be_sent_is_sent_on_redelivery(aws, auditor, lambda_context):
    event = failed_event(aws)
    real_notifier = auditor.incidents.notifier
    auditor.incidents.notifier = FailingNotifier()
    first = deliver(lambda_context, event)
    auditor.incidents.notifier = real_notifier

    second = deliver(lambda_context, event)

    assert first == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert second == {"batchItemFailures": []}
    assert len(aws.alerts()) == 1
    incident = aws.ledger.client.get(keys.INCIDENTS_PK, keys.incident_sk("target:orders-0", "failed"))
    assert incident is not None
    assert incident["notify_count"] == 1
