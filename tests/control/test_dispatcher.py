"""Dispatcher: due slots, conditional job rows, SendMessageBatch in tens, catch-up, on-demand requests."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_contracts import ledger as keys
from backup_contracts.jobs import Job
from backup_contracts.naming import SOURCE_REQUESTS, agent_prefix
from backup_functions.dispatcher import handler as dispatcher_handler
from backup_functions.dispatcher import logic
from backup_functions.ledger import NewJob
from backup_functions.ports import SqsJobQueue
from local_pipeline.clock import SimulatedClock
from local_pipeline.runner import LambdaContext

from .conftest import Aws, daily_targets, eventbridge_event, make_fleet

pytestmark = pytest.mark.integration

TICK = "2026-11-16T02:05:00Z"


def scheduled_event(when: datetime) -> dict[str, Any]:
    return eventbridge_event("aws.events", "Scheduled Event", {}, when) | {
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/bp-test-dispatcher"]
    }


def tick(clock: SimulatedClock, ctx: LambdaContext, at: datetime) -> dict[str, Any]:
    clock.set(at)
    return dispatcher_handler.handler(scheduled_event(at), ctx)


def job_rows(aws: Aws) -> list[dict[str, Any]]:
    return [item for item in aws.scan() if str(item[keys.SK]).startswith(keys.JOB_SK_PREFIX)]


def at(hour: int, minute: int = 5, day: int = 16) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_each_due_target_is_dispatched_once(aws, dispatcher, clock, lambda_context):
    result = tick(clock, lambda_context, at(2))

    assert result["due"] == 5
    assert result["sent"] == 5
    messages = {agent: aws.queue_messages(agent) for agent in ("db-1", "db-2")}
    assert sorted(m["target"] for m in messages["db-1"]) == ["orders-0", "orders-1", "orders-2"]
    assert sorted(m["target"] for m in messages["db-2"]) == ["shop-0", "shop-1"]


def test_job_message_carries_slot_id_prefix_and_deadline(aws, dispatcher, clock, lambda_context):
    tick(clock, lambda_context, at(2))

    job = Job.model_validate(next(m for m in aws.queue_messages("db-1") if m["target"] == "orders-0"))
    assert job.job_id == keys.scheduled_job_id("orders-0", at(2, 0))
    assert job.trigger == "schedule"
    assert job.bucket == aws.bucket
    assert job.key_prefix == agent_prefix("db-1")
    assert job.deadline == at(2) + timedelta(minutes=120)
    assert job.retention_class == "standard"


def test_job_row_is_watched_for_its_start(aws, dispatcher, clock, lambda_context):
    tick(clock, lambda_context, at(2))

    row = aws.ledger.client.get(keys.target_pk("orders-0"), keys.job_sk(keys.scheduled_job_id("orders-0", at(2, 0))))
    assert row is not None
    assert row["state"] == "dispatched"
    assert row[keys.WATCH_KIND] == "start"
    assert row[keys.WATCH_DEADLINE] == keys.iso(at(2) + timedelta(minutes=2 * 5 + 15))
    assert row[keys.TTL_ATTRIBUTE] == int((at(2) + timedelta(days=400)).timestamp())


def test_target_state_gets_first_rpo_watch_from_first_dispatch(aws, dispatcher, clock, lambda_context):
    tick(clock, lambda_context, at(2))

    state = aws.ledger.client.get(keys.target_pk("orders-0"), keys.STATE_SK)
    assert state is not None
    assert state[keys.WATCH_KIND] == "rpo"
    assert state[keys.WATCH_DEADLINE] == keys.iso(at(2) + timedelta(hours=26))
    assert state["first_dispatched_at"] == keys.iso(at(2))


def test_next_tick_in_the_same_slot_dispatches_nothing(aws, dispatcher, clock, lambda_context):
    tick(clock, lambda_context, at(2))
    second = tick(clock, lambda_context, at(2, 10))

    assert second["due"] == 0
    assert second["sent"] == 0
    assert len(job_rows(aws)) == 5


def test_overlapping_ticks_dispatch_each_slot_once(aws, dispatcher, fleet, clock):
    """Two invocations that both read the states before either writes: the conditional rows decide."""
    rt = dispatcher
    now = at(2)
    first = logic.tick(fleet, rt.ledger, rt.jobs, rt.config, now)
    # the second tick saw the same (empty) states: simulate it by building the same jobs and writing them
    wanted = [
        logic.new_job(
            rt.config,
            a,
            t,
            job_id=keys.scheduled_job_id(t.name, now.replace(minute=0)),
            trigger="schedule",
            slot=now.replace(minute=0),
            now=now + timedelta(seconds=3),
        )
        for a, t in fleet.targets()
    ]
    created_by_second = [job for job in wanted if rt.ledger.jobs.create(job)]

    assert first.created == 5
    assert created_by_second == []
    assert len(aws.queue_messages("db-1")) + len(aws.queue_messages("db-2")) == 5


def test_concurrent_tick_that_loses_some_rows_still_creates_the_others(aws, dispatcher, fleet, clock):
    rt = dispatcher
    slot = at(2, 0)
    jobs: list[NewJob] = [
        logic.new_job(
            rt.config, a, t, job_id=keys.scheduled_job_id(t.name, slot), trigger="schedule", slot=slot, now=at(2)
        )
        for a, t in fleet.targets()
    ]
    assert all(rt.ledger.jobs.create(job) for job in jobs[:2])

    created = [job for job in jobs if rt.ledger.jobs.create(job)]

    assert [j.job_id for j in created] == [j.job_id for j in jobs[2:]]


def test_missed_ticks_send_one_job_not_a_burst(aws, clock, lambda_context):
    fleet = make_fleet({"db-1": [{"name": "hourly", "engine": "sqlite", "schedule": "rate(1 hour)", "rpo": "2h"}]})
    aws.make_queues(fleet)
    rt = dispatcher_handler.Runtime(
        fleet=fleet,
        ledger=aws.ledger,
        jobs=SqsJobQueue(aws.client("sqs")),
        config=logic.DispatchConfig.from_fleet(fleet, bucket=aws.bucket, queue_url_prefix=aws.queue_prefix),
        clock=clock,
    )
    dispatcher_handler.configure(rt)
    try:
        tick(clock, lambda_context, at(1))
        aws.queue_messages("db-1")
        # ticks at 02:05, 03:05, 04:05 never ran; the next one is at 05:30
        result = tick(clock, lambda_context, at(5, 30))
    finally:
        dispatcher_handler.configure(None)

    messages = aws.queue_messages("db-1")
    assert result["sent"] == 1
    assert [m["job_id"] for m in messages] == [keys.scheduled_job_id("hourly", at(5, 0))]


def test_send_message_batch_is_called_ceil_n_over_10_times(aws, clock, lambda_context):
    fleet = make_fleet({"db-1": daily_targets("a", 23), "db-2": daily_targets("b", 10)})
    aws.make_queues(fleet)
    rt = dispatcher_handler.Runtime(
        fleet=fleet,
        ledger=aws.ledger,
        jobs=SqsJobQueue(aws.client("sqs")),
        config=logic.DispatchConfig.from_fleet(fleet, bucket=aws.bucket, queue_url_prefix=aws.queue_prefix),
        clock=clock,
    )
    dispatcher_handler.configure(rt)
    try:
        result = tick(clock, lambda_context, at(2))
    finally:
        dispatcher_handler.configure(None)

    assert result["sent"] == 33
    assert aws.calls["sqs.SendMessageBatch"] == math.ceil(23 / 10) + math.ceil(10 / 10)
    assert aws.calls["dynamodb.BatchGetItem"] == 1  # 33 states + 33 job rows: 66 keys
    assert aws.calls["dynamodb.PutItem"] == 2 * 33  # job row each + first-ever target state each
    assert aws.calls["dynamodb.GetItem"] == 1  # the tick marker


def test_steady_state_tick_writes_only_the_job_rows(aws, dispatcher, clock, lambda_context):
    tick(clock, lambda_context, at(2))
    aws.calls.clear()

    result = tick(clock, lambda_context, at(2, day=17))

    assert result["sent"] == 5
    assert aws.calls["dynamodb.PutItem"] == 5
    assert aws.calls["dynamodb.UpdateItem"] == 1  # the tick marker
    assert aws.calls["dynamodb.BatchGetItem"] == 1


def test_tick_with_nothing_due_reads_no_target(aws, dispatcher, clock, lambda_context):
    tick(clock, lambda_context, at(2))
    aws.calls.clear()

    result = tick(clock, lambda_context, at(2, 10))

    assert result["checked"] == 0
    assert dict(aws.calls) == {"dynamodb.GetItem": 1, "dynamodb.Query": 1, "dynamodb.UpdateItem": 1}


def test_target_added_to_the_fleet_is_dispatched_at_the_next_tick(aws, dispatcher, clock, lambda_context):
    tick(clock, lambda_context, at(2))
    bigger = make_fleet(
        {
            "db-1": [
                *daily_targets("orders", 3),
                {"name": "new-db", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "2d"},
            ],
            "db-2": daily_targets("shop", 2),
        }
    )
    dispatcher.fleet = bigger

    result = tick(clock, lambda_context, at(2, 10))

    assert result["sent"] == 1
    assert [m["target"] for m in aws.queue_messages("db-1") if m["target"] == "new-db"] == ["new-db"]


class FlakySqs:
    """Wraps the SQS client; the first ``failures`` entries sent are reported as failed."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        refused = Entries[: self.failures]
        self.failures -= len(refused)
        accepted = Entries[len(refused) :]
        response = self.real.send_message_batch(QueueUrl=QueueUrl, Entries=accepted) if accepted else {}
        response["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"} for e in refused
        ]
        return response


def test_failed_entries_are_retried_once_in_the_same_tick(aws, dispatcher, fleet, clock):
    rt = dispatcher
    flaky = SqsJobQueue(FlakySqs(aws.client("sqs"), failures=2))

    result = logic.tick(fleet, rt.ledger, flaky, rt.config, at(2))

    assert result.sent == 5
    assert result.not_sent == []
    assert len(aws.queue_messages("db-1")) + len(aws.queue_messages("db-2")) == 5


def test_entries_failing_twice_are_recorded_and_resent_next_tick(aws, dispatcher, fleet, clock):
    rt = dispatcher
    first = logic.tick(fleet, rt.ledger, SqsJobQueue(FlakySqs(aws.client("sqs"), failures=2 * 3)), rt.config, at(2))
    assert len(first.not_sent) == 3
    assert sorted(u.job_id for u in rt.ledger.jobs.unsent()) == sorted(first.not_sent)

    second = logic.tick(fleet, rt.ledger, rt.jobs, rt.config, at(2, 10))

    assert second.due == 0
    assert second.resent == 3
    targets = sorted(m["target"] for agent in ("db-1", "db-2") for m in aws.queue_messages(agent))
    assert targets == ["orders-0", "orders-1", "orders-2", "shop-0", "shop-1"]
    assert rt.ledger.jobs.unsent() == []


def backup_requested(request_id: str, target: str) -> dict[str, Any]:
    return eventbridge_event(
        SOURCE_REQUESTS,
        "Backup Requested",
        {"request_id": request_id, "target": target, "requested_by": "alice@example.com", "reason": "before upgrade"},
    )


def test_backup_requested_dispatches_one_user_job(aws, dispatcher, clock, lambda_context):
    clock.set(at(10))
    result = dispatcher_handler.handler(backup_requested("req-1", "shop-1"), lambda_context)

    messages = aws.queue_messages("db-2")
    assert result["status"] == "dispatched"
    assert len(messages) == 1
    assert messages[0]["trigger"] == "user"
    assert messages[0]["job_id"] == logic.requested_job_id("shop-1", "req-1")


def test_backup_requested_twice_is_one_job(aws, dispatcher, clock, lambda_context):
    clock.set(at(10))
    dispatcher_handler.handler(backup_requested("req-1", "shop-1"), lambda_context)
    again = dispatcher_handler.handler(backup_requested("req-1", "shop-1"), lambda_context)

    assert again["status"] == "duplicate"
    assert len(aws.queue_messages("db-2")) == 1


def test_backup_requested_for_unknown_target_is_rejected_with_reason(aws, dispatcher, clock, lambda_context):
    result = dispatcher_handler.handler(backup_requested("req-2", "no-such-db"), lambda_context)

    assert result["status"] == "rejected"
    assert "unknown target 'no-such-db'" in result["reason"]
    assert job_rows(aws) == []


def test_malformed_backup_requested_is_rejected_with_reason(aws, dispatcher, lambda_context):
    event = backup_requested("req-3", "shop-1")
    del event["detail"]["requested_by"]

    result = dispatcher_handler.handler(event, lambda_context)

    assert result["status"] == "rejected"
    assert "requested_by" in result["reason"]


def test_long_request_id_still_gives_a_valid_job_id():
    job_id = logic.requested_job_id("t" * 40, "r" * 128)
    assert len(job_id) <= 128
    assert job_id == logic.requested_job_id("t" * 40, "r" * 128)


def test_start_grace_is_two_intervals_plus_fifteen_minutes_capped_by_deadline(fleet):
    cfg = logic.DispatchConfig.from_fleet(fleet, bucket="b", queue_url_prefix="https://q/")
    assert cfg.start_grace == timedelta(minutes=25)
    short = make_fleet({"db-1": daily_targets("x", 1)}, dispatcher_interval_minutes=60, job_deadline_minutes=30)
    assert logic.DispatchConfig.from_fleet(short, bucket="b", queue_url_prefix="q").start_grace == timedelta(minutes=30)
