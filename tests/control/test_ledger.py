"""The ledger package against moto DynamoDB: conditional and monotonic writes, typed items, the watch
index, and the one incident protocol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber

from backup_contracts import ledger as keys
from backup_functions.ledger import (
    AgentState,
    JobRow,
    LedgerError,
    NewJob,
    TargetState,
    agent_subject,
    deserialize,
    serialize,
    target_subject,
)
from backup_functions.ledger.client import LedgerClient

pytestmark = pytest.mark.integration

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


def bootstrap(ledger, job: NewJob) -> bool:
    return ledger.targets.bootstrap(
        job.target, agent=job.agent, engine=job.engine, rpo=job.rpo, first_dispatched_at=job.issued_at
    )


def test_serialize_round_trips_numbers_datetimes_and_drops_none():
    item = {"a": 1, "b": 2.5, "c": T0, "d": None, "e": {"x": [1, "y"]}}
    assert deserialize(serialize(item)) == {"a": 1, "b": 2.5, "c": keys.iso(T0), "e": {"x": [1, "y"]}}


def test_items_come_back_typed_and_give_their_stored_text_again(aws):
    aws.ledger.targets.record_failure("t", "db-1", run_id="r0", at=T0, error="boom")

    state = aws.ledger.targets.get("t")

    assert isinstance(state, TargetState)
    assert state.last_failure_at == T0
    assert (
        state.stored_fields()["last_failure_at"]
        == keys.iso(T0)
        == aws.ledger.client.get("TARGET#t", "STATE")["last_failure_at"]
    )


def test_batch_get_reads_more_than_100_keys_in_chunks(aws):
    ledger = aws.ledger
    for i in range(130):
        ledger.targets.record_failure(f"t-{i}", "db-1", run_id="r", at=T0, error="e")
    aws.calls.clear()

    states = ledger.targets.get_many(f"t-{i}" for i in range(130))

    assert len(states) == 130
    assert aws.calls["dynamodb.BatchGetItem"] == 2


def test_batch_get_retries_unprocessed_keys_then_gives_up_naming_it(monkeypatch):
    import boto3

    monkeypatch.setattr("backup_functions.ledger.client.time.sleep", lambda _s: None)
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(dynamodb)
    unprocessed = {"t": {"Keys": [serialize({keys.PK: "TARGET#a", keys.SK: "STATE"})]}}
    item = serialize({keys.PK: "TARGET#a", keys.SK: "STATE", "target": "a"})
    stubber.add_response("batch_get_item", {"Responses": {"t": []}, "UnprocessedKeys": unprocessed})
    stubber.add_response("batch_get_item", {"Responses": {"t": [item]}, "UnprocessedKeys": {}})
    for _ in range(8):
        stubber.add_response("batch_get_item", {"Responses": {"t": []}, "UnprocessedKeys": unprocessed})
    client = LedgerClient("t", dynamodb)
    with stubber:
        assert list(client.batch_get([("TARGET#a", "STATE")])) == [("TARGET#a", "STATE")]
        with pytest.raises(LedgerError, match="unprocessed after 8 attempts"):
            client.batch_get([("TARGET#a", "STATE")])


def test_a_job_row_is_created_once(aws):
    assert aws.ledger.jobs.create(new_job("t")) is True
    assert aws.ledger.jobs.create(new_job("t")) is False


def test_bootstrap_never_overwrites_an_existing_target_state(aws):
    ledger = aws.ledger
    ledger.targets.record_failure("t", "db-1", run_id="r0", at=T0, error="boom")

    assert bootstrap(ledger, new_job("t")) is False
    state = ledger.targets.get("t")
    assert state is not None
    assert state.watch_deadline is None


def test_dispatch_view_reads_states_and_job_rows_together(aws):
    ledger = aws.ledger
    job = new_job("a")
    ledger.jobs.create(job)
    bootstrap(ledger, job)
    aws.calls.clear()

    states, existing = ledger.jobs.dispatch_view([("a", job.job_id), ("b", new_job("b").job_id)])

    assert set(states) == {"a"}
    assert existing == {("a", job.job_id)}
    assert aws.calls["dynamodb.BatchGetItem"] == 1


def test_due_watches_finds_only_what_is_overdue_as_typed_items(aws):
    ledger = aws.ledger
    for job in (new_job("a"), new_job("b", T0 + timedelta(hours=5))):
        ledger.jobs.create(job)
    ledger.agents.record_heartbeat("db-1", version="1", targets=["a"], sent_at=T0, timeout=timedelta(minutes=30))

    due = ledger.due_watches(T0 + timedelta(hours=1))

    assert sorted((type(item).__name__, item.pk, item.watch_kind) for item in due) == [
        ("AgentState", "AGENT#db-1", "heartbeat"),
        ("JobRow", "TARGET#a", "start"),
    ]
    job = next(item for item in due if isinstance(item, JobRow))
    assert job.watch_deadline == T0 + timedelta(minutes=30)


def test_older_heartbeat_never_overwrites_a_newer_one(aws):
    ledger = aws.ledger
    ledger.agents.record_heartbeat(
        "db-1", version="2", targets=[], sent_at=T0 + timedelta(minutes=5), timeout=timedelta(1)
    )

    moved = ledger.agents.record_heartbeat("db-1", version="1", targets=[], sent_at=T0, timeout=timedelta(1))

    assert moved is False
    agent = ledger.agents.get_many(["db-1"])["db-1"]
    assert isinstance(agent, AgentState)
    assert agent.version == "2"


def test_an_incident_opens_once_and_only_its_opener_holds_the_first_claim(aws):
    incidents = aws.ledger.incidents
    incident, claim = incidents.open(target_subject("t"), "rpo", opened_at=T0, details={"x": 1}, target="t")
    again, second_claim = incidents.open(target_subject("t"), "rpo", opened_at=T0 + timedelta(1), target="t")

    assert claim is not None
    assert second_claim is None
    assert again.opened_at == incident.opened_at == T0
    assert again.notify_count == 1
    assert again.last_notified_at == T0


def test_a_notification_is_claimed_once_by_concurrent_callers(aws):
    incidents = aws.ledger.incidents
    incidents.open(agent_subject("db-1"), "heartbeat", opened_at=T0, agent="db-1")
    [read_by_both] = incidents.list_open()

    first = incidents.claim_notification(read_by_both, T0 + timedelta(hours=1))
    second = incidents.claim_notification(read_by_both, T0 + timedelta(hours=1, minutes=1))

    assert first is not None
    assert second is None
    [incident] = incidents.list_open()
    assert incident.notify_count == 2
    assert incident.last_notified_at == T0 + timedelta(hours=1)


def test_an_incident_resolves_once_and_never_a_newer_one_of_the_same_kind(aws):
    incidents = aws.ledger.incidents
    old, _ = incidents.open(target_subject("t"), "rpo", opened_at=T0, target="t")

    assert incidents.resolve(old) is True
    assert incidents.resolve(old) is False
    incidents.open(target_subject("t"), "rpo", opened_at=T0 + timedelta(hours=3), target="t")
    assert incidents.resolve(old) is False
    assert [i.opened_at for i in incidents.list_open()] == [T0 + timedelta(hours=3)]


def test_claiming_a_resolved_incident_does_not_recreate_it(aws):
    incidents = aws.ledger.incidents
    incident, _ = incidents.open(target_subject("t"), "failed", opened_at=T0, target="t")
    incidents.resolve(incident)

    assert incidents.claim_notification(incident, T0 + timedelta(hours=1)) is None
    assert incidents.list_open() == []


def test_gfs_claim_is_exclusive_but_idempotent_for_its_run(aws):
    runs = aws.ledger.runs
    args = {"started_at": T0, "expires_at": T0 + timedelta(days=400)}
    assert runs.claim_period("t", "monthly#2026-11", run_id="r1", **args)
    assert runs.claim_period("t", "monthly#2026-11", run_id="r1", **args)
    assert not runs.claim_period("t", "monthly#2026-11", run_id="r2", **args)


def test_a_restore_moves_only_along_allowed_transitions_with_a_timestamped_history(aws):
    restores = aws.ledger.restores
    assert restores.create("r-1", {"target": "t", "kind": "restore"}, at=T0, expires_at=T0 + timedelta(days=1))
    assert not restores.create("r-1", {"target": "t"}, at=T0, expires_at=T0 + timedelta(days=1))

    running = restores.transition("r-1", "running", at=T0 + timedelta(minutes=1))
    dispatched = restores.transition(
        "r-1", "dispatched", at=T0 + timedelta(minutes=2), watch_until=("restore", T0 + timedelta(hours=1))
    )

    assert running is None  # not from requested
    assert dispatched is not None
    assert [step["state"] for step in dispatched.history] == ["requested", "dispatched"]
    assert dispatched.watch_kind == "restore"
    succeeded = restores.transition("r-1", "succeeded", at=T0 + timedelta(minutes=3), attributes={"duration_s": 4.5})
    assert succeeded is not None
    assert succeeded.watch_kind is None
    assert succeeded.duration_s == 4.5
    assert restores.transition("r-1", "failed", at=T0 + timedelta(minutes=4)) is None  # terminal is final
