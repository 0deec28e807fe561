"""Local-time crons across clock changes: each matching local time runs exactly once.

The rule (``backup_contracts.schedule._local_to_utc``, docs/fleet.md): a local time the autumn change
repeats runs once, at its first occurrence; a local time the spring change skips runs right after the jump.
Checked as properties over three zones with both changes in 2026 (and the southern hemisphere's, which
fall in the other half of the year), plus the examples a person would try first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import takewhile
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from backup_contracts.schedule import Schedule

pytestmark = pytest.mark.unit

# (zone, the UTC instant of its 2026 spring-forward change, of its 2026 fall-back change)
CHANGES = {
    "Europe/Berlin": (datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)),
    "America/New_York": (datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)),
    "Australia/Sydney": (datetime(2026, 10, 3, 16, tzinfo=UTC), datetime(2026, 4, 4, 16, tzinfo=UTC)),
}
ZONES = sorted(CHANGES)
WINDOW = timedelta(days=3)


def _crons() -> st.SearchStrategy[str]:
    """Crons whose times fall in or near the changed hours, daily or with several times an hour."""
    minute = st.sampled_from(["0", "15", "30", "45", "59", "*/20", "0,30"])
    hour = st.sampled_from(["0", "1", "2", "3", "*", "1-3", "2,14"])
    return st.builds(lambda m, h: f"{m} {h} * * *", minute, hour)


def _local_times(fields: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Every naive local time matching the cron between two instants' wall clocks (widened by a day)."""
    first = start.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    last = end.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    it = croniter(fields, first)
    return list(takewhile(lambda t: t <= last, (it.get_next(datetime) for _ in range(10_000))))


def _exists(local: datetime, zone: ZoneInfo) -> bool:
    return local.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local


def _first_instant(local: datetime, zone: ZoneInfo) -> datetime:
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _jump_past(local: datetime, zone: ZoneInfo) -> datetime:
    """The first whole minute whose wall clock shows ``local`` or later (zones change clocks on whole minutes)."""
    instant = local.replace(tzinfo=zone, fold=1).astimezone(UTC).replace(second=0, microsecond=0)
    while instant.astimezone(zone).replace(tzinfo=None) < local:
        instant += timedelta(minutes=1)
    return instant


@settings(max_examples=300, deadline=None, derandomize=True)
@given(zone_name=st.sampled_from(ZONES), change=st.sampled_from([0, 1]), fields=_crons(), offset_h=st.integers(-30, 6))
def test_every_matching_local_time_runs_exactly_once_across_a_clock_change(
    zone_name: str, change: int, fields: str, offset_h: int
) -> None:
    zone = ZoneInfo(zone_name)
    start = CHANGES[zone_name][change] + timedelta(hours=offset_h)
    end = start + WINDOW
    schedule = Schedule(f"cron({fields})", zone_name)
    slots = list(takewhile(lambda s: s <= end, schedule.slots_after(start)))

    assert slots == sorted(set(slots)), "slots are strictly ascending: nothing runs twice"
    expected: list[datetime] = []
    for local in _local_times(fields, zone, start, end):
        # a repeated time runs at its first occurrence only; a skipped one at the jump past it
        instant = _first_instant(local, zone) if _exists(local, zone) else _jump_past(local, zone)
        if start < instant <= end and instant not in expected:
            expected.append(instant)
    assert slots == expected


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    zone_name=st.sampled_from(ZONES),
    change=st.sampled_from([0, 1]),
    fields=_crons(),
    minutes=st.integers(-26 * 60, 26 * 60),
)
def test_the_latest_slot_is_the_last_of_the_slots_up_to_now(
    zone_name: str, change: int, fields: str, minutes: int
) -> None:
    now = CHANGES[zone_name][change] + timedelta(minutes=minutes, seconds=17)
    schedule = Schedule(f"cron({fields})", zone_name)
    before = list(takewhile(lambda s: s <= now, schedule.slots_after(now - timedelta(days=2))))
    assert schedule.latest_slot_at_or_before(now) == before[-1]


def test_a_daily_time_in_the_repeated_hour_runs_once_on_the_autumn_change() -> None:
    """Berlin 2026-10-25: 02:30 happens at 00:30Z (summer time) and again at 01:30Z; it runs at the first."""
    slots = Schedule("cron(30 2 * * *)", "Europe/Berlin").slots_after(datetime(2026, 10, 24, 1, tzinfo=UTC))
    assert [next(slots) for _ in range(2)] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


def test_a_daily_time_the_spring_change_skips_runs_right_after_the_jump() -> None:
    """Berlin 2026-03-29: the clock goes from 02:00 to 03:00 (01:00Z); the 02:30 backup runs at 03:00."""
    slots = Schedule("cron(30 2 * * *)", "Europe/Berlin").slots_after(datetime(2026, 3, 28, 2, tzinfo=UTC))
    assert [next(slots) for _ in range(2)] == [
        datetime(2026, 3, 29, 1, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]


def test_in_the_second_pass_of_the_repeated_hour_the_latest_slot_is_the_first_pass_run() -> None:
    """At 01:10Z on 2026-10-25 Berlin's clock shows 02:10 for the second time; 02:20 already ran at 00:20Z."""
    schedule = Schedule("cron(20 2 * * *)", "Europe/Berlin")
    assert schedule.latest_slot_at_or_before(datetime(2026, 10, 25, 1, 10, tzinfo=UTC)) == datetime(
        2026, 10, 25, 0, 20, tzinfo=UTC
    )
