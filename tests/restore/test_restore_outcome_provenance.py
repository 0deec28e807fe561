"""Design rule 8 for restores and drills: an agent's outcome counts only when its sender is the job's
agent and it matches the stored job field by field; anything else is ignored, logged with what differed,
and changes nothing — no state, no drill RTO, no alert."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from backup_contracts import ledger as keys
from backup_contracts.ledger import iso
from backup_contracts.naming import SOURCE_REQUESTS, agent_event_source

from .conftest import T0, World

pytestmark = pytest.mark.integration


def _dispatched(world: World, restore_id: str = "r-prov") -> str:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    assert world.request(restore_id=restore_id, target="app", destination="app-clone").action == "dispatched"
    return restore_id


def _success(world: World, restore_id: str, **extra: Any) -> dict[str, Any]:
    return world.report(restore_id, finished_at=iso(T0 + timedelta(minutes=3)), duration_s=12.0, **extra)


def _state(world: World, restore_id: str) -> str:
    item = world.item(restore_id)
    assert item is not None
    return str(item["state"])


FIELD_CHANGES: dict[str, tuple[str, Any, str]] = {
    "another job id": ("job_id", "r-other-job", "job_id 'r-other-job', the job's is 'r-prov'"),
    "another source target": ("source_target", "app-other", "source_target 'app-other', the job's is 'app'"),
    "another source run": ("source_run_id", "20261101T000000Z-old", "source_run_id '20261101T000000Z-old'"),
    "another destination": ("destination", "app-staging", "destination 'app-staging', the job's is 'app-clone'"),
    "another mode": ("mode", "in-place", "mode 'in-place', the job's is 'clone'"),
}


@pytest.mark.parametrize("case", list(FIELD_CHANGES), ids=list(FIELD_CHANGES))
def test_a_success_that_contradicts_the_job_is_ignored_and_says_what_differs(
    world: World, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    restore_id = _dispatched(world)
    field, value, words = FIELD_CHANGES[case]

    with caplog.at_level(logging.WARNING, logger="backup_functions.restore.agent_reports"):
        outcome = world.agent_event("Restore Succeeded", _success(world, restore_id, **{field: value}))

    assert outcome.action == "ignored"
    assert words in outcome.detail
    assert _state(world, restore_id) == "dispatched"
    assert world.alerts() == []
    assert any(words in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("detail_type", ["Restore Started", "Restore Failed"])
def test_started_and_failed_reports_that_contradict_the_job_are_ignored_too(world: World, detail_type: str) -> None:
    restore_id = _dispatched(world)
    report = world.report(restore_id, source_run_id="20261101T000000Z-old")
    if detail_type == "Restore Failed":
        report |= {"finished_at": iso(T0), "stage": "restore", "error": "boom", "destination_touched": True}

    outcome = world.agent_event(detail_type, report)

    assert outcome.action == "ignored"
    assert _state(world, restore_id) == "dispatched"
    assert world.alerts() == []


def test_a_report_sent_by_another_agent_naming_the_jobs_agent_is_ignored(world: World) -> None:
    restore_id = _dispatched(world)  # the job went to db-host

    outcome = world.agent_event(
        "Restore Succeeded", _success(world, restore_id), source=agent_event_source("staging-host")
    )

    assert outcome.action == "ignored"
    assert "sent from backup.agent.staging-host, the job went to agent db-host" in outcome.detail
    assert "agent 'db-host' declared, but sent by 'staging-host'" in outcome.detail
    assert _state(world, restore_id) == "dispatched"


def test_a_report_by_another_agent_about_itself_is_ignored(world: World) -> None:
    restore_id = _dispatched(world)

    outcome = world.agent_event("Restore Succeeded", _success(world, restore_id, agent="staging-host"))

    assert outcome.action == "ignored"
    assert "sent from backup.agent.staging-host, the job went to agent db-host" in outcome.detail
    assert _state(world, restore_id) == "dispatched"


def test_an_agent_report_from_a_source_that_is_no_agents_is_not_a_contract_event(world: World) -> None:
    from backup_functions.restore.logic import MalformedEventError

    restore_id = _dispatched(world)
    envelope = world.envelope(SOURCE_REQUESTS, "Restore Succeeded", _success(world, restore_id))

    with pytest.raises(MalformedEventError, match="no contract"):
        world.coordinator.handle(envelope)
    assert _state(world, restore_id) == "dispatched"


def test_the_jobs_own_report_still_counts(world: World) -> None:
    restore_id = _dispatched(world)

    assert world.agent_event("Restore Succeeded", _success(world, restore_id)).action == "succeeded"
    assert _state(world, restore_id) == "succeeded"


def test_a_report_about_a_request_still_awaiting_its_approval_is_ignored(world: World) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=3))
    world.submit(restore_id="r-waiting", target="orders", mode="in-place")
    forged = {
        "restore_id": "r-waiting",
        "job_id": "r-waiting",
        "agent": "db-host",
        "source_target": "orders",
        "source_run_id": "anything",
        "destination": "orders",
        "mode": "in-place",
        "started_at": iso(T0),
    }

    outcome = world.agent_event("Restore Started", forged)

    assert outcome.action == "ignored"
    assert "no job was dispatched" in outcome.detail


def test_a_forged_drill_success_records_no_rto(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=5))
    [drill_id] = world.coordinator.tick().drills_dispatched
    forged = world.report(drill_id, finished_at=iso(T0 + timedelta(minutes=2)), duration_s=1.0)
    forged["agent"] = "staging-host"  # the agent of another host claims the drill went well, and fast

    outcome = world.agent_event("Restore Succeeded", forged)

    assert (outcome.action, outcome.drill) == ("ignored", True)
    state = world.ledger.client.get(keys.target_pk("app"), keys.STATE_SK)
    assert state is not None
    assert "last_drill_rto_s" not in state
    assert "last_drill_ok" not in state
    assert _state(world, drill_id) == "dispatched"


def test_a_drill_report_with_the_restore_mode_instead_of_drill_is_ignored(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=5))
    [drill_id] = world.coordinator.tick().drills_dispatched

    outcome = world.agent_event(
        "Restore Succeeded", world.report(drill_id, mode="clone", finished_at=iso(T0), duration_s=1.0)
    )

    assert outcome.action == "ignored"
    assert "mode 'clone', the job's is 'drill'" in outcome.detail
