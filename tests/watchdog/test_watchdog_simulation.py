"""Simulated days of the whole control plane (dispatcher → fake agent → audit → watchdog), no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from wd_simulation import World, fleet_of

from backup_contracts import ledger as keys

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
SCHEDULES = [
    ("rate(1 day)", "26h"),
    ("cron(30 1 * * *)", "26h"),
    ("rate(12 hours)", "13h"),
    ("rate(1 day)", "26h"),
    ("cron(0 */6 * * *)", "7h"),
]


def test_a_healthy_fleet_of_50_targets_raises_no_alert_in_24_simulated_hours(aws: None) -> None:
    fleet = fleet_of(
        {f"host-{a}": [(f"db-{a}-{t}", *SCHEDULES[(a + t) % len(SCHEDULES)]) for t in range(10)] for a in range(5)}
    )
    world = World.create(fleet, T0)

    world.run_until(T0 + 24 * H)

    assert len(fleet.targets()) == 50
    assert world.runs >= 50 * 2  # every target backed up at least twice (first sight + schedule)
    assert [a.subject for a in world.alerts] == []
    assert world.ledger.client.query(keys.INCIDENTS_PK) == []


def test_a_target_whose_agent_is_down_is_held_by_the_agent_incident_which_reports_it_caught_up(aws: None) -> None:
    fleet = fleet_of({"host-down": [("orders", "rate(1 day)", "26h")], "host-ok": [("shop", "rate(1 day)", "26h")]})
    world = World.create(fleet, T0)
    world.run_until(T0 + H)  # first backup of each target at T0 (+30 s)
    world.down.add("host-down")

    world.run_until(T0 + 30 * H)  # the agent stays down for 29 hours: its job never starts, the RPO passes
    held = [i for i in world.ledger.incidents.list_open() if i.suppressed_by]
    world.down.clear()
    world.run_until(T0 + 31 * H)  # it comes back, takes the waiting job, backs up

    # one incident, the agent's: its open, reminders backing off (1h, 2h, 4h, 8h, 16h), its recovery
    assert {a.kind for a in world.alerts} == {"heartbeat"}
    assert [a.phase for a in world.alerts] == ["open", "reminder", "reminder", "reminder", "reminder", "resolved"]
    gaps = [b.at - a.at for a, b in zip(world.alerts[:4], world.alerts[1:5], strict=True)]
    assert gaps == [H, 2 * H, 4 * H, 8 * H]
    assert "orders" in world.alerts[0].body
    assert "RPO breached in" in world.alerts[0].body
    assert sorted((i.kind, i.suppressed_by) for i in held) == [
        ("rpo", "agent:host-down#heartbeat"),
        ("start", "agent:host-down#heartbeat"),
    ]
    assert "Caught up:   orders" in world.alerts[-1].body
    assert world.ledger.client.query(keys.INCIDENTS_PK) == []
