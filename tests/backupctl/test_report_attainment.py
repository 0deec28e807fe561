"""The evidence report's arithmetic: RPO attainment over a period and RTO attainment over drills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backupctl.attainment import (
    NO_DRILLS,
    NO_OBJECTIVE,
    NOT_IN_SERVICE,
    NOT_YET_DUE,
    DrillOutcome,
    Interval,
    complement,
    obliged_from,
    percent_floor,
    rpo_attainment,
    rto_attainment,
    union,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
RPO = timedelta(hours=26)
PERIOD = Interval(T0, T0 + 10 * DAY)


def daily(first: datetime, count: int) -> list[datetime]:
    return [first + n * DAY for n in range(count)]


def test_daily_backups_within_a_26h_rpo_attain_100_percent() -> None:
    result = rpo_attainment(daily(T0 - 2 * HOUR, 11), RPO, PERIOD, T0 - 30 * DAY)

    assert result.percent == 100.0
    assert result.gaps == ()
    assert result.measured == 10 * DAY


def test_a_target_with_no_runs_that_was_dispatched_before_the_period_attains_0_percent() -> None:
    start = obliged_from(rpo=RPO, first_dispatched_at=T0 - 5 * DAY, first_run_at=None, first_good_at=None)

    result = rpo_attainment([], RPO, PERIOD, start)

    assert result.percent == 0.0
    assert result.gaps == (PERIOD,)
    assert result.longest_gap == 10 * DAY


def test_a_target_never_dispatched_and_never_backed_up_is_not_measured() -> None:
    start = obliged_from(rpo=RPO, first_dispatched_at=None, first_run_at=None, first_good_at=None)

    result = rpo_attainment([], RPO, PERIOD, start)

    assert start is None
    assert (result.percent, result.reason, result.window) == (None, NOT_IN_SERVICE, None)


def test_a_target_added_mid_period_is_measured_from_its_first_rpo_deadline() -> None:
    added = T0 + 5 * DAY
    # its first backup comes 30 h after the first dispatch: 4 h after the first RPO deadline
    goods = daily(added + 30 * HOUR, 4)
    start = obliged_from(rpo=RPO, first_dispatched_at=added, first_run_at=added, first_good_at=goods[0])

    result = rpo_attainment(goods, RPO, PERIOD, start)

    assert start == added + RPO
    assert result.window == Interval(added + RPO, PERIOD.end)
    assert result.gaps == (Interval(added + RPO, added + 30 * HOUR),)
    measured = PERIOD.end - (added + RPO)
    assert result.percent == percent_floor(measured - 4 * HOUR, measured)


def test_a_first_backup_before_the_first_rpo_deadline_starts_the_measurement() -> None:
    added = T0 + 5 * DAY
    start = obliged_from(rpo=RPO, first_dispatched_at=added, first_run_at=added, first_good_at=added + HOUR)

    result = rpo_attainment(daily(added + HOUR, 5), RPO, PERIOD, start)

    assert result.window == Interval(added + HOUR, PERIOD.end)
    assert result.percent == 100.0


def test_a_target_whose_first_rpo_deadline_is_after_the_period_is_not_measured() -> None:
    start = obliged_from(rpo=RPO, first_dispatched_at=PERIOD.end - HOUR, first_run_at=None, first_good_at=None)

    result = rpo_attainment([], RPO, PERIOD, start)

    assert (result.percent, result.reason) == (None, NOT_YET_DUE)


def test_a_failing_streak_longer_than_the_rpo_is_a_breach_from_last_good_plus_rpo_to_the_next_good() -> None:
    # good daily at 01:00 until day 3, then three days of failures, good again from day 6
    goods = [*daily(T0 + HOUR - DAY, 4), *daily(T0 + 6 * DAY + HOUR, 4)]

    result = rpo_attainment(goods, RPO, PERIOD, T0 - 30 * DAY)

    breach = Interval(T0 + 2 * DAY + HOUR + RPO, T0 + 6 * DAY + HOUR)
    assert result.gaps == (breach,)
    assert result.breached_time == breach.duration == 70 * HOUR
    assert result.percent == percent_floor(PERIOD.duration - 70 * HOUR, PERIOD.duration) == 70.83


def test_a_streak_shorter_than_the_rpo_costs_nothing() -> None:
    goods = [T0 - HOUR, T0 + 25 * HOUR, *daily(T0 + 2 * DAY, 9)]  # 26 h apart at most

    assert rpo_attainment(goods, RPO, PERIOD, T0 - DAY).percent == 100.0


def test_a_backup_before_the_period_covers_its_start_and_one_after_it_counts_for_nothing() -> None:
    goods = [T0 - 20 * HOUR, PERIOD.end + HOUR]  # covers [T0, T0 + 6 h); the second is after the end

    result = rpo_attainment(goods, RPO, PERIOD, T0 - DAY)

    assert result.covered == (Interval(T0, T0 + 6 * HOUR),)
    assert result.gaps == (Interval(T0 + 6 * HOUR, PERIOD.end),)


def test_coverage_is_half_open_at_the_rpo_boundary() -> None:
    period = Interval(T0, T0 + 2 * RPO)

    result = rpo_attainment([T0, T0 + RPO], RPO, period, T0)  # the second lands the instant the first expires

    assert result.gaps == ()
    assert result.percent == 100.0


def test_one_second_uncovered_is_not_rounded_up_to_100_percent() -> None:
    result = rpo_attainment([T0, T0 + RPO + timedelta(seconds=1)], RPO, Interval(T0, T0 + 2 * RPO), T0)

    assert result.breached_time == timedelta(seconds=1)
    assert result.percent == 99.99


def test_a_period_that_ends_before_now_ignores_what_came_after() -> None:
    period = Interval(T0, T0 + DAY)

    result = rpo_attainment([T0 - 2 * HOUR, T0 + 3 * DAY], RPO, period, T0 - DAY)

    assert result.percent == 100.0


def test_an_empty_period_or_a_zero_rpo_is_refused() -> None:
    with pytest.raises(ValueError, match="period"):
        rpo_attainment([], RPO, Interval(T0, T0), T0)
    with pytest.raises(ValueError, match="RPO"):
        rpo_attainment([], timedelta(0), PERIOD, T0)


def test_union_merges_overlapping_and_touching_intervals_and_drops_empty_ones() -> None:
    a, b, c = Interval(T0, T0 + HOUR), Interval(T0 + HOUR, T0 + 2 * HOUR), Interval(T0 + 3 * HOUR, T0 + 3 * HOUR)
    inner = Interval(T0 + 10 * HOUR, T0 + 11 * HOUR)
    outer = Interval(T0 + 9 * HOUR, T0 + 12 * HOUR)

    assert union([b, c, outer, a, inner]) == [Interval(T0, T0 + 2 * HOUR), outer]
    assert complement([a], Interval(T0, T0 + 2 * HOUR)) == [b]


def test_rto_attainment_counts_failed_drills_and_slow_drills_as_missed() -> None:
    outcomes = [
        DrillOutcome(ok=True, rto=timedelta(minutes=20)),
        DrillOutcome(ok=True, rto=timedelta(minutes=61)),  # slower than the objective
        DrillOutcome(ok=False, rto=None),
        DrillOutcome(ok=True, rto=timedelta(minutes=60)),  # exactly the objective: met
    ]

    result = rto_attainment(outcomes, timedelta(hours=1))

    assert (result.drills, result.met, result.percent) == (4, 2, 50.0)
    assert result.worst == timedelta(minutes=61)


def test_rto_attainment_without_an_objective_or_without_drills_says_why() -> None:
    measured = rto_attainment([DrillOutcome(ok=True, rto=timedelta(minutes=5))], None)
    no_drills = rto_attainment([], timedelta(hours=1))

    assert (measured.percent, measured.reason, measured.worst) == (None, NO_OBJECTIVE, timedelta(minutes=5))
    assert (no_drills.percent, no_drills.reason) == (None, NO_DRILLS)
