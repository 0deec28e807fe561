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


def test_a_target_whose_agent_is_down_alerts_once_after_its_rpo_reminds_and_resolves(aws: None) -> None:
    fleet = fleet_of({"host-down": [("orders", "rate(1 day)", "26h")], "host-ok": [("shop", "rate(1 day)", "26h")]})
    world = World.create(fleet, T0)
    world.run_until(T0 + H)  # first backup of each target at T0 (+30 s)
    world.down.add("host-down")

    world.run_until(T0 + 30 * H)  # the agent stays down for 29 hours
    down_alerts = list(world.alerts)
    world.down.clear()
    world.run_until(T0 + 31 * H)  # it comes back, takes the waiting job, backs up

    rpo = [a for a in world.alerts if a.kind == "rpo"]
    rpo_deadline = T0 + timedelta(seconds=30) + 26 * H
    assert [a.phase for a in rpo if a.at < T0 + 30 * H] == ["open", "reminder", "reminder", "reminder"]
    assert rpo[0].target == "orders"
    assert rpo_deadline <= rpo[0].at < rpo_deadline + timedelta(minutes=5)
    assert rpo[1].at - rpo[0].at == H
    assert [a.phase for a in rpo if a.at >= T0 + 30 * H] == ["resolved"]
    # the other alerts of the outage: the silent agent and the job it never started, each once, then resolved
    opened = sorted((a.kind, a.subject.split(":")[1].split(" - ")[0].strip()) for a in down_alerts if a.phase == "open")
    assert opened == [
        ("heartbeat", "agent host-down"),
        ("rpo", "orders on host-down"),
        ("start", "orders on host-down"),
    ]
    assert sorted(a.kind for a in world.alerts if a.phase == "resolved") == ["heartbeat", "rpo", "start"]
    assert all(a.target in (None, "orders") and a.agent in (None, "host-down") for a in world.alerts)
    assert world.ledger.client.query(keys.INCIDENTS_PK) == []
