"""Ledger data access against moto DynamoDB: conditional and monotonic writes, watch index, incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backup_contracts import ledger as keys
from backup_functions.ledger import NewJob, agent_subject, deserialize, serialize, target_subject

T0 = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)


def new_job(target: str, slot: datetime = T0) -> NewJob:
    return NewJob(
        job_id=keys.scheduled_job_id(target, slot),
        target=target,
        agent="db-1",
        engine="sqlite",
        trigger="schedule",
        slot=slot,
        issued_at=slot + timedelta(minutes=5),
        deadline=slot + timedelta(hours=2),
        start_deadline=slot + timedelta(minutes=30),
        rpo=timedelta(hours=26),
        expires_at=slot + timedelta(days=400),
        message="{}",
        attributes={"kind": "backup"},
    )


def test_serialize_round_trips_numbers_datetimes_and_drops_none():
    item = {"a": 1, "b": 2.5, "c": T0, "d": None, "e": {"x": [1, "y"]}}
    assert deserialize(serialize(item)) == {"a": 1, "b": 2.5, "c": keys.iso(T0), "e": {"x": [1, "y"]}}


def test_batch_get_reads_more_than_100_keys_in_chunks(aws):
    ledger = aws.ledger
    for i in range(130):
        ledger.record_failure(f"t-{i}", "db-1", run_id="r", at=T0, error="e")
    aws.calls.clear()

    states = ledger.get_target_states(f"t-{i}" for i in range(130))

    assert len(states) == 130
    assert aws.calls["dynamodb.BatchGetItem"] == 2


def test_a_job_row_is_created_once(aws):
    assert aws.ledger.create_job(new_job("t")) is True
    assert aws.ledger.create_job(new_job("t")) is False


def test_bootstrap_never_overwrites_an_existing_target_state(aws):
    ledger = aws.ledger
    ledger.record_failure("t", "db-1", run_id="r0", at=T0, error="boom")

    assert ledger.bootstrap_target_state(new_job("t")) is False
    state = ledger.get_target_state("t")
    assert state is not None
    assert keys.WATCH_DEADLINE not in state


def test_dispatch_view_reads_states_and_job_rows_together(aws):
    ledger = aws.ledger
    job = new_job("a")
    ledger.create_job(job)
    ledger.bootstrap_target_state(job)
    aws.calls.clear()

    states, existing = ledger.dispatch_view([("a", job.job_id), ("b", new_job("b").job_id)])

    assert set(states) == {"a"}
    assert existing == {("a", job.job_id)}
    assert aws.calls["dynamodb.BatchGetItem"] == 1


def test_due_watches_finds_only_what_is_overdue(aws):
    ledger = aws.ledger
    ledger.create_scheduled_jobs([new_job("a"), new_job("b", T0 + timedelta(hours=5))])
    assert [j.target for j in ledger.create_scheduled_jobs([new_job("a")])] == []
    ledger.record_heartbeat("db-1", version="1", targets=["a"], sent_at=T0, timeout=timedelta(minutes=30))

    due = ledger.due_watches(T0 + timedelta(hours=1))

    assert sorted((item[keys.PK], item[keys.WATCH_KIND]) for item in due) == [
        ("AGENT#db-1", "heartbeat"),
        ("TARGET#a", "start"),
    ]
    assert aws.ledger.due_watches(T0 + timedelta(hours=1), kinds=["start"])[0][keys.PK] == "TARGET#a"


def test_older_heartbeat_never_overwrites_a_newer_one(aws):
    ledger = aws.ledger
    ledger.record_heartbeat("db-1", version="2", targets=[], sent_at=T0 + timedelta(minutes=5), timeout=timedelta(1))

    moved = ledger.record_heartbeat("db-1", version="1", targets=[], sent_at=T0, timeout=timedelta(1))

    assert moved is False
    agent = ledger.get_agent_state("db-1")
    assert agent is not None
    assert agent["version"] == "2"


def test_incident_opens_once_and_resolves_once(aws):
    ledger = aws.ledger
    _, created = ledger.open_incident(target_subject("t"), "rpo", opened_at=T0, details={"x": 1}, target="t")
    _, again = ledger.open_incident(target_subject("t"), "rpo", opened_at=T0 + timedelta(1), details={}, target="t")

    resolved = ledger.resolve_incident(target_subject("t"), "rpo")
    twice = ledger.resolve_incident(target_subject("t"), "rpo")

    assert (created, again) == (True, False)
    assert resolved is not None
    assert resolved["opened_at"] == keys.iso(T0)
    assert twice is None


def test_notified_incident_counts_notifications(aws):
    ledger = aws.ledger
    ledger.open_incident(agent_subject("db-1"), "heartbeat", opened_at=T0, details={}, agent="db-1")

    ledger.mark_incident_notified(agent_subject("db-1"), "heartbeat", T0)
    ledger.mark_incident_notified(agent_subject("db-1"), "heartbeat", T0 + timedelta(hours=1))

    [incident] = ledger.list_incidents()
    assert incident["notify_count"] == 2
    assert incident["last_notified_at"] == keys.iso(T0 + timedelta(hours=1))


def test_marking_a_resolved_incident_notified_does_not_recreate_it(aws):
    assert aws.ledger.mark_incident_notified(target_subject("t"), "failed", T0) is False
    assert aws.ledger.list_incidents() == []


def test_gfs_claim_is_exclusive_but_idempotent_for_its_run(aws):
    ledger = aws.ledger
    args = {"started_at": T0, "expires_at": T0 + timedelta(days=400)}
    assert ledger.claim_period("t", "monthly#2026-11", run_id="r1", **args)
    assert ledger.claim_period("t", "monthly#2026-11", run_id="r1", **args)
    assert not ledger.claim_period("t", "monthly#2026-11", run_id="r2", **args)
