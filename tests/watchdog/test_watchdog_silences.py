"""Silences on a simulated clock: held while in force, recorded and shown, paged once when they end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from wd_simulation import Alert, World, fleet_of

from backup_contracts import ledger as keys
from backup_functions.ledger import SilenceItem
from backupctl.attainment import Interval
from backupctl.report_ledger import LedgerSilences
from tools.backupctl.status import collect_status, silences_footer

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def _world() -> World:
    fleet = fleet_of(
        {
            "host-a": [("orders", "rate(1 day)", "26h"), ("shop", "rate(1 day)", "26h")],
            "host-b": [("web", "rate(1 day)", "26h")],
        }
    )
    return World.create(fleet, T0)


def _after(world: World, count: int) -> list[Alert]:
    return world.alerts[count:]


def _pages(alerts: list[Alert]) -> list[tuple[str, str, str | None]]:
    return [(a.kind, a.phase, a.target or a.agent) for a in alerts]


def _silences(world: World) -> list[SilenceItem]:
    return [SilenceItem.model_validate(item) for item in world.ledger.client.query("SILENCES")]


def test_a_silenced_target_does_not_page_until_the_silence_expires_then_pages_once(aws: None) -> None:
    world = _world()
    world.failing.add("orders")
    assert world.silence(target="orders", hours=6, silence_id="s-upgrade") == "recorded"
    [announced] = world.alerts
    assert (announced.kind, announced.phase) == ("silence", "open")
    assert "SILENCE SET: s-upgrade (target orders)" in announced.subject
    assert "By:          alice@example.com" in announced.body

    world.run_until(T0 + 6 * H - 5 * M)  # the dump fails at T0; the silence holds it for six hours
    during = _after(world, 1)
    held = world.ledger.incidents.get("target:orders", "failed")
    rows = {row.target: row for row in collect_status(world.ledger, world.fleet, now=world.clock.now())}
    footer = silences_footer(world.ledger.silences.in_force(world.clock.now()))

    world.run_until(T0 + 6 * H + 10 * M)  # the silence expired at T0+6h
    at_expiry = _after(world, 1 + len(during))
    world.run_until(T0 + 7 * H)
    then = _after(world, 1 + len(during) + len(at_expiry))

    assert during == []
    assert held is not None
    assert (held.silenced_by, held.last_notified_at) == ("s-upgrade", None)
    assert "silenced-by-s-upgrade" in rows["orders"].incidents
    assert rows["shop"].incidents == ()
    assert "Silence s-upgrade: holds pages about orders until 2026-11-16 06:00" in footer
    assert _pages(at_expiry) == [("failed", "open", "orders")]
    assert "Was held by silence s-upgrade (target orders) by alice@example.com: database upgrade" in at_expiry[0].body
    assert "(expired)" in at_expiry[0].body
    assert _pages(then) == []  # the next reminder comes a reminder interval after the page, as usual
    [ended] = _silences(world)
    assert ended.ended_at is not None
    assert keys.WATCH_DEADLINE not in world.ledger.client.query("SILENCES")[0]


def test_a_silence_on_an_agent_holds_its_outage_then_pages_the_cause_once(aws: None) -> None:
    world = _world()
    world.run_until(T0 + H)
    world.silence(agent="host-a", hours=8, silence_id="s-host-a")
    world.down.add("host-a")
    before = len(world.alerts)

    world.run_until(T0 + 9 * H - 5 * M)
    during = _after(world, before)
    world.run_until(T0 + 9 * H + 5 * M)
    at_expiry = _after(world, before + len(during))

    assert during == []
    assert _pages(at_expiry) == [("heartbeat", "open", "host-a")]
    assert "Was held by silence s-host-a (agent host-a)" in at_expiry[0].body
    assert "Affected targets (2" in at_expiry[0].body


def test_lifting_a_silence_pages_what_it_held_at_the_next_tick(aws: None) -> None:
    world = _world()
    world.failing.add("orders")
    world.silence(target="orders", hours=6, silence_id="s-lift")
    world.run_until(T0 + 2 * H)
    before = len(world.alerts)

    assert world.unsilence("s-lift") == "lifted"
    assert world.unsilence("s-lift") == "duplicate"  # a redelivery: nothing more
    lifted = _after(world, before)
    world.run_until(T0 + 2 * H + 10 * M)
    after = _after(world, before + len(lifted))

    assert _pages(lifted) == [("silence", "resolved", None)]
    assert "SILENCE LIFTED: s-lift" in lifted[0].subject
    assert "Lifted by:   bob@example.com (done early)" in lifted[0].body
    assert _pages(after) == [("failed", "open", "orders")]
    assert "lifted by bob@example.com" in after[0].body


def test_a_maintenance_window_booked_ahead_holds_only_inside_it(aws: None) -> None:
    world = _world()
    world.failing.add("orders")
    world.silence(target="orders", hours=0, starts_at=T0 + 2 * H, expires_at=T0 + 4 * H, silence_id="s-window")
    world.run_until(T0 + 6 * H)

    pages = [(a.at, a.kind, a.phase) for a in world.alerts if a.kind == "failed"]
    times = [at for at, _, _ in pages]

    assert pages[0][1:] == ("failed", "open")  # T0: the failure pages, the window has not begun
    assert not [at for at in times if T0 + 2 * H <= at < T0 + 4 * H]  # nothing inside the window
    assert next(at for at in times if at >= T0 + 4 * H) < T0 + 4 * H + 10 * M  # paged at its end
    assert sum(1 for at in times if T0 + 4 * H <= at < T0 + 5 * H) == 1


def test_a_silence_over_nothing_broken_ends_without_a_word_and_24_healthy_hours_stay_quiet(aws: None) -> None:
    world = _world()
    world.silence(target="*", hours=2, silence_id="s-quiet")
    world.run_until(T0 + 24 * H)

    assert _pages(world.alerts) == [("silence", "open", None)]
    assert _silences(world)[0].ended_at is not None


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"hours": 24 * 8}, "longer than this fleet allows (pipeline.alerts.silence_max: 7d)"),
        ({"hours": 1, "target": "ordrs"}, "target 'ordrs' match nothing in the fleet"),
        ({"hours": 1, "target": None, "agent": "host-c*"}, "agent 'host-c*' match nothing in the fleet"),
        ({"hours": -1}, "it expired at"),
        ({"hours": 1, "starts_at": T0 + 40 * 24 * H, "expires_at": T0 + 40 * 24 * H + H}, "ahead"),
        ({"hours": 1, "starts_at": T0 + 3 * H, "expires_at": T0 + 2 * H}, "it would end before it starts"),
    ],
)
def test_a_silence_the_fleet_does_not_allow_is_refused_with_its_fix_and_holds_nothing(
    aws: None, change: dict[str, object], refusal: str
) -> None:
    world = _world()
    request: dict[str, object] = {"target": "orders", **change}

    outcome = world.silence(**request)  # type: ignore[arg-type]

    [refused] = world.alerts
    assert outcome == "refused"
    assert (refused.kind, refused.phase) == ("silence-refused", "open")
    assert refusal in refused.body
    assert "Fix:" in refused.body
    assert _silences(world) == []


def test_a_silence_id_reused_for_another_silence_is_refused(aws: None) -> None:
    world = _world()
    world.silence(target="orders", hours=2, silence_id="s-same")

    assert world.silence(target="shop", hours=2, silence_id="s-same") == "refused"
    assert "already in use by silence s-same (target orders)" in world.alerts[-1].body
    assert [s.target for s in _silences(world)] == ["orders"]


def test_unsilencing_what_is_not_in_force_is_refused(aws: None) -> None:
    world = _world()

    assert world.unsilence("s-nothing") == "refused"
    assert "no silence s-nothing is in force" in world.alerts[-1].body


def test_the_evidence_report_shows_each_silence_on_the_targets_it_held(aws: None) -> None:
    world = _world()
    world.silence(agent="host-a", hours=3, silence_id="s-report", reason="kernel upgrade")
    period = Interval(T0 - 24 * H, T0 + 24 * H)

    source = LedgerSilences(world.ledger, period)

    [orders] = source.silences("orders", "host-a", period)
    assert (orders.span, orders.requested_by, orders.reason) == (
        Interval(T0, T0 + 3 * H),
        "alice@example.com",
        "kernel upgrade",
    )
    assert source.silences("web", "host-b", period) == []
    assert source.recorded is True
