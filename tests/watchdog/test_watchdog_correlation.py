"""One page per cause, on a simulated clock: a dead agent with 20 due targets, a removed agent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from wd_simulation import World, fleet_of

from backup_contracts import ledger as keys
from tools.backupctl.status import collect_status

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def _dead_agent_world() -> World:
    fleet = fleet_of(
        {
            "host-dead": [(f"db-{t}", "rate(1 day)", "26h") for t in range(20)],
            "host-ok": [("shop", "rate(1 day)", "26h")],
        }
    )
    world = World.create(fleet, T0)
    world.run_until(T0 + H)
    world.down.add("host-dead")
    return world


def test_a_dead_agent_with_20_due_targets_pages_once_then_at_most_4_reminders_in_a_day(aws: None) -> None:
    world = _dead_agent_world()
    while not world.alerts:  # the first tick that says anything
        world.step()
    first_tick = list(world.alerts)
    first_at = first_tick[0].at
    world.run_until(first_at + 24 * H)  # the targets' jobs never start (T0+24h), their RPOs pass (T0+26h)
    next_day = world.alerts[len(first_tick) :]

    assert len(first_tick) <= 2
    assert [(a.kind, a.phase, a.agent) for a in first_tick] == [("heartbeat", "open", "host-dead")]
    assert "Affected targets (20" in first_tick[0].body
    assert all(f"db-{t}:" in first_tick[0].body for t in range(20))
    assert len(next_day) <= 4
    assert {(a.kind, a.phase) for a in next_day} == {("heartbeat", "reminder")}
    assert "RPO breached" in next_day[-1].body
    # the 20 jobs that never started are recorded and shown, not paged
    held = [i for i in world.ledger.incidents.list_open() if i.suppressed_by == "agent:host-dead#heartbeat"]
    assert sorted({i.kind for i in held}) == ["start"]
    assert len(held) == 20
    rows = {row.target: row for row in collect_status(world.ledger, world.fleet)}
    assert "held-by-heartbeat" in rows["db-7"].incidents
    assert "start" in rows["db-7"].incidents
    assert rows["shop"].incidents == ()


def test_the_recovery_message_lists_the_targets_that_caught_up_and_nothing_else_pages(aws: None) -> None:
    world = _dead_agent_world()
    world.run_until(T0 + 27 * H)
    held = [i for i in world.ledger.incidents.list_open() if i.suppressed_by == "agent:host-dead#heartbeat"]
    world.down.clear()
    before = len(world.alerts)
    world.run_until(T0 + 28 * H)

    after = world.alerts[before:]
    assert [(a.kind, a.phase) for a in after] == [("heartbeat", "resolved")]
    assert "Caught up:   " + ", ".join(sorted(f"db-{t}" for t in range(20))) in after[0].body
    assert "Still behind: none" in after[0].body
    assert sorted({i.kind for i in held}) == ["rpo", "start"]
    assert len(held) == 40
    assert world.ledger.client.query(keys.INCIDENTS_PK) == []


def test_an_agent_removed_from_the_fleet_gets_one_final_notice_and_nothing_more(aws: None) -> None:
    world = _dead_agent_world()
    world.run_until(T0 + 27 * H)  # its agent incident is open, 40 held per-target incidents with it
    world.fleet = fleet_of({"host-ok": [("shop", "rate(1 day)", "26h")]})
    before = len(world.alerts)
    world.run_until(T0 + 27 * H + 3 * 24 * H)  # three more simulated days

    after = world.alerts[before:]
    assert [(a.kind, a.phase, a.agent) for a in after] == [("removed", "resolved", "host-dead")]
    assert "REMOVED FROM THE FLEET: agent host-dead" in after[0].subject
    assert all(f"db-{t}" in after[0].body for t in range(20))
    assert world.ledger.client.query(keys.INCIDENTS_PK) == []
    assert world.ledger.due_watches(world.clock.now()) == []  # no watch of host-dead or its targets left


def test_a_target_added_back_after_its_removal_is_watched_again_from_its_next_dispatch(aws: None) -> None:
    both = fleet_of({"host-a": [("orders", "rate(1 day)", "26h"), ("shop", "rate(1 day)", "26h")]})
    world = World.create(both, T0)
    world.run_until(T0 + H)  # both backed up at T0
    world.fleet = fleet_of({"host-a": [("orders", "rate(1 day)", "26h")]})
    world.run_until(T0 + 27 * H)  # shop's RPO watch fell due while it was gone: cleared, not alerted
    cleared = world.ledger.client.get(keys.target_pk("shop"), keys.STATE_SK)
    world.down.add("host-a")  # so that no backup of shop resets the watch on its own
    world.fleet = both
    world.run_until(T0 + 27 * H + 10 * M)
    rearmed = world.ledger.client.get(keys.target_pk("shop"), keys.STATE_SK)

    assert cleared is not None
    assert (cleared.get("watch_deadline"), cleared["watch_cleared_reason"]) == (None, "removed from the fleet")
    assert rearmed is not None
    assert rearmed["watch_kind"] == "rpo"
    assert rearmed["watch_deadline"] == keys.iso(T0 + 27 * H + 26 * H)  # its first dispatch back + its RPO
    assert "watch_cleared_reason" not in rearmed
