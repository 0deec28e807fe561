"""Grandfather-father-son retention: which tier a good backup gets (plain Python, no AWS).

Every good backup is ``daily``. The first good backup recorded in a month (in the target's time
zone) is also the month's ``monthly``, the first of an ISO week the week's ``weekly``, when the
retention class keeps those tiers. A backup that wins several periods gets the longest-kept tier.
"Winning" a period is a conditional claim in the ledger (pk=TARGET#t, sk=GFS#<period>), so two
concurrent audits can never both promote, and a redelivered event reclaims its own period
(idempotent). Failed and unverified runs never claim anything.

The object's tag is ``retention=<class>-<tier>`` (naming.retention_tag_value); the bucket's
lifecycle rules expire each tag value after the class's days for that tier — except for the
target's **keep-set**, its newest ``keep_last`` good backups, tagged ``retention=keep`` (which no rule
matches) whatever their tier. ``keep_set`` decides the set; ``audit/keeping.py`` applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from backup_contracts.fleet import RetentionClass
from backup_contracts.naming import retention_tag_value
from backup_functions.ledger.items import KeptBackup

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"


@dataclass(frozen=True)
class Period:
    tier: str
    key: str  # e.g. "monthly#2026-11", "weekly#2026-W47"


def periods(retention: RetentionClass, started_at: datetime, timezone: str = "UTC") -> list[Period]:
    """The promotion periods this backup could claim, longest-kept tier first."""
    if started_at.tzinfo is None:
        raise ValueError("started_at must be timezone-aware")
    local = started_at.astimezone(ZoneInfo(timezone))
    found: list[Period] = []
    if retention.monthly_days:
        found.append(Period(MONTHLY, f"{MONTHLY}#{local:%Y-%m}"))
    if retention.weekly_days:
        iso = local.isocalendar()
        found.append(Period(WEEKLY, f"{WEEKLY}#{iso.year}-W{iso.week:02d}"))
    found.sort(key=lambda p: retention.tiers()[p.tier], reverse=True)
    return found


def choose_tier(retention: RetentionClass, won: list[str]) -> str:
    """The longest-kept tier among those won; ``daily`` when none."""
    tiers = retention.tiers()
    candidates = [tier for tier in won if tier in tiers] or [DAILY]
    return max(candidates, key=lambda tier: tiers[tier])


def promote(
    retention: RetentionClass,
    started_at: datetime,
    claim: Callable[[Period], bool],
    timezone: str = "UTC",
) -> str:
    """Claim every period this backup could win (``claim`` returns True when won) and pick the tier."""
    won = [period.tier for period in periods(retention, started_at, timezone) if claim(period)]
    return choose_tier(retention, won)


def tag_value(retention_class: str, tier: str) -> str:
    return retention_tag_value(retention_class, tier)


def keep_set(
    current: list[KeptBackup], candidate: KeptBackup, keep_last: int
) -> tuple[list[KeptBackup], list[KeptBackup]]:
    """The keep-set once ``candidate`` (a good backup) is known, and the members it releases.

    The set is the newest ``keep_last`` good backups by start time (then run id), whatever order they
    arrive in: an older backup arriving late enters only if it is among the newest, and so never pushes
    a newer one out. A candidate already in the set changes nothing (a redelivery), and so does one too
    old to enter. Members beyond a lowered ``keep_last`` are released. Returns (set newest first, released).
    """
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    members = {member.run_id: member for member in current}
    members.setdefault(candidate.run_id, candidate)
    chosen = sorted(members.values(), key=lambda member: member.order, reverse=True)[:keep_last]
    kept = {member.run_id for member in chosen}
    return chosen, [member for member in current if member.run_id not in kept]
