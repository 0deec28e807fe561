"""RTO objectives: a drill's measured RTO counts from its dispatch (queue wait included); slower than the
target's ``rto`` alerts once; the fleet refuses an objective nothing can measure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from backup_contracts import ledger as keys
from backup_contracts.fleet import FleetConfigError, parse_fleet
from backup_contracts.ledger import iso

from .conftest import FLEET, T0, World

pytestmark = pytest.mark.integration


def _drill_succeeded(world: World, drill_id: str, *, after: timedelta, duration_s: float) -> Any:
    """The agent took the drill off its queue late and reports it ``after`` the dispatch."""
    world.clock.advance(after)
    finished = T0 + after
    report = world.report(
        drill_id,
        started_at=iso(finished - timedelta(seconds=duration_s)),
        finished_at=iso(finished),
        duration_s=duration_s,
        verification={"ok": True},
    )
    return world.agent_event("Restore Succeeded", report)


def _last_drill_rto(world: World) -> float:
    state = world.ledger.client.get(keys.target_pk("app"), keys.STATE_SK)
    assert state is not None
    return float(state["last_drill_rto_s"])


def test_the_measured_rto_counts_the_queue_wait_not_only_the_agents_restore(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=5))
    [drill_id] = world.coordinator.tick().drills_dispatched

    outcome = _drill_succeeded(world, drill_id, after=timedelta(minutes=20), duration_s=42.5)

    assert outcome.action == "succeeded"
    assert outcome.duration_s == 20 * 60
    assert _last_drill_rto(world) == 20 * 60  # dispatched at T0, verified at T0 + 20 min
    assert world.alerts() == []  # within the 30m objective


def test_a_drill_slower_than_its_rto_alerts_once_with_both_numbers(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=5))
    [drill_id] = world.coordinator.tick().drills_dispatched

    _drill_succeeded(world, drill_id, after=timedelta(minutes=45), duration_s=600)
    again = world.report(  # SQS redelivers the same report
        drill_id,
        started_at=iso(T0 + timedelta(minutes=35)),
        finished_at=iso(T0 + timedelta(minutes=45)),
        duration_s=600,
        verification={"ok": True},
    )
    world.agent_event("Restore Succeeded", again)

    [alert] = world.alerts()
    assert alert.subject == "[rt] RTO BREACHED: drill of app took 45m (objective 30m)"
    assert "queue wait included" in alert.body
    assert "the restore itself took 600" in alert.body
    assert alert.attributes["kind"] == "rto-breached"
    assert alert.attributes["severity"] == "warning"  # slow, not broken
    assert _last_drill_rto(world) == 45 * 60
    state = world.ledger.client.get(keys.target_pk("app"), keys.STATE_SK)
    assert state is not None
    assert state["last_drill_ok"] is True  # it restored fine: slow is not failed


def _fleet_with_app(**changes: Any) -> dict[str, Any]:
    fleet: dict[str, Any] = {**FLEET, "agents": [dict(agent) for agent in FLEET["agents"]]}
    targets = [dict(target) for target in fleet["agents"][0]["targets"]]
    targets[0] = {key: value for key, value in {**targets[0], **changes}.items() if value is not None}
    fleet["agents"][0] = {**fleet["agents"][0], "targets": targets}
    return fleet


def test_an_rto_without_a_drill_is_refused_naming_the_fix() -> None:
    with pytest.raises(FleetConfigError) as refused:
        parse_fleet(_fleet_with_app(drill=None), "fleet.yaml")
    assert "rto 30m has nothing to measure it" in str(refused.value)
    assert "Fix: add drill: {schedule: rate(7 days), destination: app-drill}" in str(refused.value)


def test_an_rto_the_job_deadline_would_cut_short_is_refused() -> None:
    with pytest.raises(FleetConfigError) as refused:
        parse_fleet(_fleet_with_app(rto="2h"), "fleet.yaml")
    assert "not shorter than pipeline.job_deadline_minutes (60)" in str(refused.value)


def test_an_rto_beyond_a_week_is_refused() -> None:
    with pytest.raises(FleetConfigError) as refused:
        parse_fleet(_fleet_with_app(rto="8d"), "fleet.yaml")
    assert "longer than 7d" in str(refused.value)
