from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup_contracts.schedule import Schedule, ScheduleError, parse_duration

pytestmark = pytest.mark.unit


def test_cron_is_evaluated_in_the_targets_time_zone() -> None:
    schedule = Schedule("cron(0 2 * * *)", "Europe/Berlin")
    slot = schedule.latest_slot_at_or_before(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
    assert slot == datetime(2026, 11, 22, 1, 0, tzinfo=UTC)  # 02:00 CET


def test_weekday_cron_has_a_weekend_gap() -> None:
    assert Schedule("cron(0 2 * * 1-5)").max_interval() == timedelta(days=3)


def test_rate_slots_are_aligned_and_ascending() -> None:
    start = datetime(2026, 11, 22, 3, 17, tzinfo=UTC)
    slots = list(islice(Schedule("rate(6 hours)").slots_after(start), 3))
    assert slots == [datetime(2026, 11, 22, h, 0, tzinfo=UTC) for h in (6, 12, 18)]


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)))  # noqa: DTZ001 - hypothesis bounds are naive by design
def test_latest_slot_is_never_after_now_and_the_next_is(now: datetime) -> None:
    for schedule in (Schedule("rate(90 minutes)"), Schedule("cron(15 */3 * * *)", "America/New_York")):
        latest = schedule.latest_slot_at_or_before(now)
        assert latest is not None
        assert latest <= now
        assert next(schedule.slots_after(latest)) > now


@pytest.mark.parametrize("text", ["0m", "5", "h", "3w", "-1h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ScheduleError, match="not a duration"):
        parse_duration(text)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        Schedule("rate(1 day)", "Mars/Olympus")


def test_a_cron_slot_a_fraction_of_a_second_after_now_is_not_yet_due() -> None:
    now = datetime(2001, 1, 1, 2, 14, 59, 1, tzinfo=UTC)
    latest = Schedule("cron(15 */3 * * *)", "America/New_York").latest_slot_at_or_before(now)
    assert latest == datetime(2000, 12, 31, 23, 15, tzinfo=UTC)
