"""GFS promotion, the keep-set and Object Lock planning, plain Python: which tier a good backup gets,
which backups are kept whatever their age, what retention a version is given."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from backup_contracts.fleet import RetentionClass
from backup_functions import retention
from backup_functions.audit.keeping import plan_lock
from backup_functions.ledger.items import KeptBackup
from backup_functions.ports import Retention

pytestmark = pytest.mark.unit

STANDARD = RetentionClass(daily_days=14, weekly_days=62, monthly_days=400)
DAILY_ONLY = RetentionClass(daily_days=7)


class Claims:
    """In-memory stand-in for the ledger's conditional period claims."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}

    def claimer(self, run_id: str):
        def claim(period: retention.Period) -> bool:
            return self.owner.setdefault(period.key, run_id) == run_id

        return claim


def test_first_backup_of_a_month_is_monthly():
    claims = Claims()
    tier = retention.promote(STANDARD, datetime(2026, 11, 1, 2, tzinfo=UTC), claims.claimer("r1"))
    assert tier == "monthly"


def test_second_backup_of_the_same_week_is_daily():
    claims = Claims()
    retention.promote(STANDARD, datetime(2026, 11, 16, 2, tzinfo=UTC), claims.claimer("r1"))
    tier = retention.promote(STANDARD, datetime(2026, 11, 17, 2, tzinfo=UTC), claims.claimer("r2"))
    assert tier == "daily"


def test_first_backup_of_a_later_week_in_the_same_month_is_weekly():
    claims = Claims()
    retention.promote(STANDARD, datetime(2026, 11, 3, 2, tzinfo=UTC), claims.claimer("r1"))
    tier = retention.promote(STANDARD, datetime(2026, 11, 10, 2, tzinfo=UTC), claims.claimer("r2"))
    assert tier == "weekly"


def test_monthly_winner_also_takes_its_week():
    claims = Claims()
    retention.promote(STANDARD, datetime(2026, 11, 2, 2, tzinfo=UTC), claims.claimer("r1"))  # Monday, Nov 2
    tier = retention.promote(STANDARD, datetime(2026, 11, 3, 2, tzinfo=UTC), claims.claimer("r2"))
    assert tier == "daily"


def test_reclaiming_with_the_same_run_is_idempotent():
    claims = Claims()
    first = retention.promote(STANDARD, datetime(2026, 11, 1, 2, tzinfo=UTC), claims.claimer("r1"))
    again = retention.promote(STANDARD, datetime(2026, 11, 1, 2, tzinfo=UTC), claims.claimer("r1"))
    assert first == again == "monthly"


def test_class_without_weekly_or_monthly_is_always_daily():
    claims = Claims()
    assert retention.promote(DAILY_ONLY, datetime(2026, 11, 1, 2, tzinfo=UTC), claims.claimer("r1")) == "daily"
    assert claims.owner == {}


def test_periods_follow_the_targets_time_zone():
    # 23:30 UTC on Oct 31 is already Nov 1 in Berlin
    periods = retention.periods(STANDARD, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "Europe/Berlin")
    assert [p.key for p in periods] == ["monthly#2026-11", "weekly#2026-W44"]


def test_iso_week_at_year_boundary():
    periods = retention.periods(STANDARD, datetime(2027, 1, 1, 12, tzinfo=UTC))
    assert "weekly#2026-W53" in [p.key for p in periods]


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        retention.periods(STANDARD, datetime(2026, 11, 1))  # noqa: DTZ001


def test_longest_kept_tier_wins_even_if_weekly_outlives_monthly():
    odd = RetentionClass(daily_days=7, weekly_days=500, monthly_days=100)
    assert retention.choose_tier(odd, ["monthly", "weekly"]) == "weekly"


def test_tag_value_names_class_and_tier():
    assert retention.tag_value("standard", "weekly") == "standard-weekly"


# --- the keep-set: the newest keep_last good backups, whatever order they arrive in -----------------------------
def _backup(day: int, run: str | None = None) -> KeptBackup:
    run_id = run or f"r{day:02d}"
    return KeptBackup(
        run_id=run_id,
        started_at=datetime(2026, 11, day, 2, tzinfo=UTC),
        bucket="b",
        key=f"agents/db-1/orders/{run_id}.zst",
        tag="standard-daily",
    )


def _arrive(order: list[KeptBackup], keep_last: int) -> tuple[list[str], list[str]]:
    """Feed backups in ``order``; the final set and every backup released on the way."""
    current: list[KeptBackup] = []
    released: list[str] = []
    for backup in order:
        current, out = retention.keep_set(current, backup, keep_last)
        released += [b.run_id for b in out]
    return [b.run_id for b in current], released


def test_keep_set_holds_the_newest_backups_newest_first():
    kept, released = _arrive([_backup(d) for d in range(1, 6)], keep_last=3)
    assert kept == ["r05", "r04", "r03"]
    assert released == ["r01", "r02"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(1, 6))))
def test_keep_set_does_not_depend_on_the_order_backups_arrive_in(order):
    kept, released = _arrive([_backup(d) for d in order], keep_last=3)
    assert kept == ["r05", "r04", "r03"]
    assert set(released) <= {"r01", "r02"}  # a newer backup is never pushed out, not even for a while


def test_an_older_backup_arriving_late_does_not_push_a_newer_one_out():
    current, _ = _arrive([_backup(d) for d in (3, 4, 5)], keep_last=3)
    chosen, released = retention.keep_set([_backup(d) for d in (5, 4, 3)], _backup(1), 3)
    assert [b.run_id for b in chosen] == current
    assert released == []


def test_a_late_backup_that_is_among_the_newest_enters_and_releases_the_oldest():
    chosen, released = retention.keep_set([_backup(d) for d in (5, 4, 2)], _backup(3), 3)
    assert [b.run_id for b in chosen] == ["r05", "r04", "r03"]
    assert [b.run_id for b in released] == ["r02"]


def test_a_redelivered_member_changes_nothing():
    current = [_backup(d) for d in (5, 4, 3)]
    chosen, released = retention.keep_set(current, _backup(4), 3)
    assert chosen == current
    assert released == []


def test_a_lowered_keep_last_releases_the_oldest_members():
    chosen, released = retention.keep_set([_backup(d) for d in (5, 4, 3, 2)], _backup(6), 2)
    assert [b.run_id for b in chosen] == ["r06", "r05"]
    assert [b.run_id for b in released] == ["r04", "r03", "r02"]


def test_backups_started_at_the_same_instant_are_ordered_by_run_id():
    same = [_backup(5, "r05-a"), _backup(5, "r05-b")]
    chosen, _ = retention.keep_set([same[0]], same[1], 1)
    assert [b.run_id for b in chosen] == ["r05-b"]


def test_keep_last_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        retention.keep_set([], _backup(1), 0)


# --- Object Lock: extend, never shorten, never switch modes, never a date in the past ----------------------
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def _lock(mode: str, days: int) -> Retention:
    return Retention("COMPLIANCE" if mode == "compliance" else "GOVERNANCE", NOW + timedelta(days=days))


def test_a_version_without_retention_is_locked_as_wanted():
    assert plan_lock(None, _lock("governance", 14), NOW) == _lock("governance", 14)


@pytest.mark.parametrize("mode", ["governance", "compliance"])
def test_a_longer_or_equal_retention_is_never_shortened(mode):
    assert plan_lock(_lock(mode, 400), _lock(mode, 14), NOW) is None
    assert plan_lock(_lock(mode, 14), _lock(mode, 14), NOW) is None


def test_a_shorter_retention_is_extended_in_the_mode_it_has():
    assert plan_lock(_lock("compliance", 14), _lock("governance", 62), NOW) == _lock("compliance", 62)
    assert plan_lock(_lock("governance", 14), _lock("compliance", 62), NOW) == _lock("governance", 62)


def test_no_retention_is_set_once_its_date_has_passed():
    assert plan_lock(None, _lock("governance", 0), NOW) is None
    assert plan_lock(None, _lock("governance", -3), NOW) is None
