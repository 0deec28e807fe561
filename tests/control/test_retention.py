"""GFS promotion, plain Python: which tier a good backup gets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup_contracts.fleet import RetentionClass
from backup_functions import retention

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
