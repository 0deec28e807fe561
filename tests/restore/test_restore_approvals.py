"""Restores into protected targets: requested and approved through the approvals URL, whose caller AWS
authenticates; approved only by a listed approver who is not the requester, in time."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from backup_contracts.fleet import parse_fleet
from backup_functions.restore import handler as restore_handler
from local_pipeline.approvals_url import function_url_event

from .conftest import ALICE, BOB, CAROL, FLEET, REGION, T0, World

pytestmark = pytest.mark.integration


def _waiting(world: World, restore_id: str = "r-prot", **fields: Any) -> None:
    """orders' latest backup, requested in place by alice: it waits for an approval."""
    world.seed_backup("orders", started=T0 - timedelta(hours=3))
    reply = world.submit(restore_id=restore_id, target="orders", mode="in-place", **fields)
    assert (reply.status, reply.answer.action) == (200, "awaiting-approval"), reply.answer
    world.alerts()  # the approval notice


def _state(world: World, restore_id: str) -> str:
    item = world.item(restore_id)
    assert item is not None
    return str(item["state"])


# --------------------------------------------------------------------------- the request


def test_a_protected_restore_through_the_url_waits_and_the_notice_says_who_asked_and_who_may_approve(
    world: World,
) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=3))

    reply = world.submit(restore_id="r-prot", target="orders", mode="in-place")

    assert (reply.status, reply.answer.action, reply.answer.caller) == (200, "awaiting-approval", ALICE)
    assert world.all_jobs() == []
    [alert] = world.alerts()
    assert "APPROVAL NEEDED" in alert.subject
    assert f"Requested by: {ALICE}" in alert.body
    assert f"    {BOB}" in alert.body
    assert "backupctl approve r-prot" in alert.body
    assert "token" not in alert.body.lower()  # nothing secret: the approval itself is authenticated
    assert alert.facts["approvers"] == [ALICE, BOB]
    item = world.item("r-prot")
    assert item is not None
    assert (item["state"], item["requested_by"], item["requested_by_arn"]) == ("awaiting-approval", ALICE, ALICE)


def test_a_protected_restore_put_on_the_bus_is_rejected_saying_how_to_submit_it(world: World) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=3))

    outcome = world.request(restore_id="r-bus", target="orders", mode="in-place")

    assert (outcome.action, outcome.reason_code) == ("rejected", "authenticated-request-required")
    assert "backupctl restore" in outcome.detail
    assert "BACKUP_APPROVALS_URL" in outcome.detail
    [event] = world.pipeline_events()
    assert event["detail"]["reason_code"] == "authenticated-request-required"
    [alert] = world.alerts()
    assert "authenticated-request-required" in alert.subject
    assert "approvals URL" in alert.body
    assert world.all_jobs() == []


def test_a_clone_into_a_protected_target_put_on_the_bus_is_rejected_too(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))

    outcome = world.request(restore_id="r-bus-clone", target="app", destination="app-staging")

    assert (outcome.action, outcome.reason_code) == ("rejected", "authenticated-request-required")
    assert world.all_jobs() == []


def test_an_unprotected_restore_through_the_url_is_dispatched_and_records_the_requester(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))

    reply = world.submit(caller=CAROL, restore_id="r-url", target="app", destination="app-clone")

    assert (reply.status, reply.answer.action) == (200, "dispatched")
    assert [job.restore_id for job in world.jobs("db-host")] == ["r-url"]
    item = world.item("r-url")
    assert item is not None
    assert item["requested_by_arn"] == CAROL


def test_requested_by_is_the_caller_and_cannot_be_someone_else(world: World) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=3))

    reply = world.submit(restore_id="r-who", target="orders", mode="in-place", requested_by=BOB)

    assert (reply.status, reply.answer.action) == (400, "refused")
    assert f"requested_by is the caller AWS authenticated ({ALICE})" in reply.answer.detail
    assert world.item("r-who") is None


def test_the_same_restore_id_from_another_caller_is_a_reuse_not_a_redelivery(world: World) -> None:
    _waiting(world, "r-same-id")

    reply = world.submit(caller=BOB, restore_id="r-same-id", target="orders", mode="in-place")

    assert (reply.answer.action, reply.answer.reason_code) == ("rejected", "restore-id-reused")
    item = world.item("r-same-id")
    assert item is not None
    assert (item["state"], item["requested_by_arn"]) == ("awaiting-approval", ALICE)


def test_an_approval_notice_lost_to_a_crash_is_sent_on_redelivery(world: World) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=3))
    original = world.coordinator.context.notifier

    class Failing:
        def notify(self, alert: Any, *, dedup_id: str | None = None) -> str:
            raise RuntimeError("SNS unavailable")

    world.coordinator.context.notifier = Failing()  # type: ignore[assignment]
    with contextlib.suppress(RuntimeError):
        world.submit(restore_id="r-crash", target="orders", mode="in-place")
    world.coordinator.context.notifier = original

    reply = world.submit(restore_id="r-crash", target="orders", mode="in-place")

    assert reply.answer.action == "duplicate"
    [alert] = world.alerts()
    assert "APPROVAL NEEDED" in alert.subject


# --------------------------------------------------------------------------- the approval


def test_approval_by_a_listed_approver_dispatches_the_announced_plan(world: World) -> None:
    _waiting(world)
    world.clock.advance(timedelta(minutes=10))

    reply = world.approve("r-prot", by=BOB)

    assert (reply.status, reply.answer.action, reply.answer.caller) == (200, "dispatched", BOB)
    [job] = world.jobs("db-host")
    assert (job.restore_id, job.mode, job.target) == ("r-prot", "in-place", "orders")
    item = world.item("r-prot")
    assert item is not None
    assert item["approved_by"] == BOB
    assert [s["state"] for s in item["history"]] == ["requested", "awaiting-approval", "dispatched"]


def test_self_approval_is_refused_with_its_own_reason_and_the_request_still_waits(world: World) -> None:
    _waiting(world)  # requested by alice, who is an approver herself

    reply = world.approve("r-prot", by=ALICE)

    assert (reply.status, reply.answer.action, reply.answer.reason_code) == (403, "rejected", "self-approval")
    assert f"{ALICE} requested restore r-prot and cannot approve it too" in reply.answer.detail
    assert world.all_jobs() == []
    assert _state(world, "r-prot") == "awaiting-approval"
    assert [e["detail"]["reason_code"] for e in world.pipeline_events()] == ["self-approval"]
    assert "self-approval" in world.alerts()[0].subject
    # a second approver still can
    assert world.approve("r-prot", by=BOB).answer.action == "dispatched"


def test_a_principal_the_fleet_does_not_list_cannot_approve(world: World) -> None:
    _waiting(world)

    reply = world.approve("r-prot", by=CAROL)

    assert (reply.status, reply.answer.reason_code) == (403, "not-an-approver")
    assert f"{CAROL} is not an approver of orders" in reply.answer.detail
    assert world.all_jobs() == []
    assert _state(world, "r-prot") == "awaiting-approval"


def test_a_targets_own_approvers_decide_for_it(world: World) -> None:
    raw = json.loads(json.dumps(FLEET))
    raw["agents"][1]["targets"][0]["approvers"] = [CAROL]  # app-staging
    world.coordinator.context.fleet = parse_fleet(raw)
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    world.submit(restore_id="r-staging", target="app", destination="app-staging")

    assert world.approve("r-staging", by=BOB).answer.reason_code == "not-an-approver"
    assert world.approve("r-staging", by=CAROL).answer.action == "dispatched"
    assert [job.restore_id for job in world.jobs("staging-host")] == ["r-staging"]


def test_an_approval_put_on_the_bus_approves_nothing_and_says_how_to_approve(world: World) -> None:
    _waiting(world)

    outcome = world.bus_approval("r-prot", by="bob@example.com")

    assert (outcome.action, outcome.reason_code) == ("rejected", "approval-not-authenticated")
    assert "backupctl approve r-prot" in outcome.detail
    assert world.all_jobs() == []
    assert _state(world, "r-prot") == "awaiting-approval"


def test_a_late_approval_by_an_approver_rejects_the_request(world: World) -> None:
    _waiting(world)
    world.clock.advance(timedelta(minutes=31))

    reply = world.approve("r-prot", by=BOB)

    assert (reply.status, reply.answer.reason_code) == (200, "approval-expired")
    assert _state(world, "r-prot") == "rejected"
    assert world.all_jobs() == []


def test_the_tick_rejects_a_request_whose_only_approval_was_refused(world: World) -> None:
    _waiting(world)
    world.approve("r-prot", by=ALICE)  # refused: self-approval
    world.clock.advance(timedelta(minutes=29))
    assert world.coordinator.tick().approvals_expired == []

    world.clock.advance(timedelta(minutes=2))
    report = world.coordinator.tick()

    assert report.approvals_expired == ["r-prot"]
    assert _state(world, "r-prot") == "rejected"
    assert world.all_jobs() == []


def test_an_approval_counts_once(world: World) -> None:
    _waiting(world)
    world.approve("r-prot", by=BOB)

    again = world.approve("r-prot", by=BOB)

    assert (again.status, again.answer.action) == (200, "duplicate")
    assert len(world.jobs("db-host")) == 1


def test_approval_releases_the_announced_backup_even_if_a_newer_one_was_made_meanwhile(world: World) -> None:
    announced = world.seed_backup("orders", started=T0 - timedelta(hours=3))
    world.submit(restore_id="r-same", target="orders", mode="in-place")
    world.seed_backup("orders", started=T0 + timedelta(minutes=5))
    world.clock.advance(timedelta(minutes=10))

    world.approve("r-same")

    [job] = world.jobs("db-host")
    assert job.source is not None
    assert job.source.run_id == announced.run_id


def test_approval_is_refused_when_the_object_vanished_while_waiting(world: World) -> None:
    backup = world.seed_backup("orders", started=T0 - timedelta(hours=3))
    world.submit(restore_id="r-vanish", target="orders", mode="in-place")
    world.s3.delete_object(Bucket=world.resources.bucket, Key=backup.key, VersionId=backup.version_id)

    reply = world.approve("r-vanish")

    assert reply.answer.reason_code == "object-missing"
    assert world.all_jobs() == []


def test_approval_of_an_unknown_restore_is_answered_with_a_rejection(world: World) -> None:
    reply = world.approve("r-nobody")

    assert (reply.answer.action, reply.answer.reason_code) == ("rejected", "not-awaiting-approval")
    assert world.pipeline_events()[0]["detail"]["reason_code"] == "not-awaiting-approval"


# --------------------------------------------------------------------------- the URL itself


@pytest.mark.parametrize(
    ("call", "status", "words"),
    [
        (("/approvals", {"restore_id": "r-1"}, None), 403, "no IAM identity"),
        (("/elsewhere", {}, ALICE), 404, "no such path"),
        (("/approvals", "{not json", ALICE), 400, "not JSON"),
        (("/approvals", "[1, 2]", ALICE), 400, "a JSON object"),
        (("/approvals", {"restore_id": "r-1", "approved_by": "bob"}, ALICE), 400, "not an approval"),
        (("/restores", {"target": "orders"}, ALICE), 400, "restore_id"),
    ],
)
def test_calls_that_are_no_request_are_refused_with_a_reason(
    world: World, call: tuple[str, Any, str | None], status: int, words: str
) -> None:
    reply = world.url(*call)

    assert (reply.status, reply.answer.action) == (status, "refused")
    assert words in reply.answer.detail
    assert world.all_jobs() == []


def test_only_post_is_served(world: World) -> None:
    event = function_url_event(
        method="GET", path="/approvals", body="", caller_arn=BOB, account=world.resources.account, region=REGION
    )
    from backup_functions.restore.api import ApprovalsApi

    reply = ApprovalsApi(world.coordinator).handle(event)

    assert reply.status == 405


class _LambdaContext:
    function_name = "rt-restore"
    memory_limit_in_mb = 256
    aws_request_id = "req-url"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:rt-restore"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    restore_handler.configure(restore_handler.Runtime(world.coordinator))
    yield world
    restore_handler.configure(None)


def test_the_lambda_entry_point_answers_a_function_url_request(wired: World) -> None:
    _waiting(wired)
    body = base64.b64encode(json.dumps({"restore_id": "r-prot"}).encode()).decode()
    event = function_url_event(
        method="POST", path="/approvals", body=body, caller_arn=BOB, account=wired.resources.account, region=REGION
    )
    event["isBase64Encoded"] = True

    response = restore_handler.handler(event, _LambdaContext())

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["action"] == "dispatched"
    assert [job.restore_id for job in wired.jobs("db-host")] == ["r-prot"]
