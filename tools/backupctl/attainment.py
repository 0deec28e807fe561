"""RPO and RTO attainment: the arithmetic of the evidence report (pure; no AWS, unit-tested directly).

docs/oncall.md ("The evidence report") defines every number; in short:

- A good backup that finished at ``f`` *covers* ``[f, f + rpo)``: for that half-open span the target had
  a good backup younger than its RPO. This is the watchdog's rule (it pages at ``last good + rpo``).
- A target is *measured* from ``obliged_from`` (the earlier of its first RPO deadline — first dispatch
  plus RPO, or first run plus RPO — and its first good backup) to the end of the period; before that it
  could not yet have breached its RPO. The measured window is that span clipped to the period.
- RPO attainment = covered time within the measured window / the measured window's length, in percent,
  rounded *down* to 0.01 %, so that 100.00 % means not one second uncovered.
- RTO attainment = drills in the period that succeeded within the RTO objective / drills in the period
  that ended (failed drills count as missed); none without an objective.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

NOT_IN_SERVICE = "never dispatched and never backed up: not measured"
NOT_YET_DUE = "its first RPO deadline is after the period: not measured"
NO_OBJECTIVE = "no objective"
NO_DRILLS = "no drill ended in the period"


@dataclass(frozen=True, order=True)
class Interval:
    """The half-open span ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return max(self.end - self.start, timedelta(0))

    @property
    def empty(self) -> bool:
        return self.end <= self.start


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """The same instants as sorted, disjoint, non-empty intervals (touching ones merged)."""
    merged: list[Interval] = []
    for interval in sorted(i for i in intervals if not i.empty):
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def clip(intervals: Iterable[Interval], window: Interval) -> list[Interval]:
    """The parts of ``intervals`` inside ``window`` (as a union)."""
    clipped = (Interval(max(i.start, window.start), min(i.end, window.end)) for i in intervals)
    return union(clipped)


def complement(intervals: Iterable[Interval], window: Interval) -> list[Interval]:
    """The parts of ``window`` that ``intervals`` leave uncovered."""
    gaps: list[Interval] = []
    cursor = window.start
    for interval in clip(intervals, window):
        if interval.start > cursor:
            gaps.append(Interval(cursor, interval.start))
        cursor = max(cursor, interval.end)
    if cursor < window.end:
        gaps.append(Interval(cursor, window.end))
    return gaps


def total(intervals: Iterable[Interval]) -> timedelta:
    return sum((i.duration for i in union(intervals)), timedelta(0))


def percent_floor(part: timedelta, whole: timedelta) -> float:
    """``part`` of ``whole`` in percent, rounded down to 0.01 (100.00 only when nothing is missing)."""
    if whole <= timedelta(0):
        raise ValueError("the whole must be positive")
    micro_part = part // timedelta(microseconds=1)
    micro_whole = whole // timedelta(microseconds=1)
    return math.floor(micro_part * 10_000 / micro_whole) / 100  # integers: exact, no float rounding up


def obliged_from(
    *,
    rpo: timedelta,
    first_dispatched_at: datetime | None,
    first_run_at: datetime | None,
    first_good_at: datetime | None,
) -> datetime | None:
    """When the target starts being measured: the earliest of its first RPO deadline (first dispatch or
    first run, plus the RPO) and its first good backup; None when none of these happened."""
    candidates = [moment + rpo for moment in (first_dispatched_at, first_run_at) if moment is not None]
    if first_good_at is not None:
        candidates.append(first_good_at)
    return min(candidates) if candidates else None


@dataclass(frozen=True)
class RpoAttainment:
    """How much of the measured window had a good backup younger than the RPO."""

    window: Interval | None  # the measured window (None: not measured, see ``reason``)
    covered: tuple[Interval, ...] = ()
    gaps: tuple[Interval, ...] = ()  # the RPO breaches within the window
    percent: float | None = None
    reason: str | None = None

    @property
    def measured(self) -> timedelta:
        return self.window.duration if self.window else timedelta(0)

    @property
    def covered_time(self) -> timedelta:
        return total(self.covered)

    @property
    def breached_time(self) -> timedelta:
        return total(self.gaps)

    @property
    def longest_gap(self) -> timedelta:
        return max((gap.duration for gap in self.gaps), default=timedelta(0))


def rpo_attainment(
    good_finished_at: Iterable[datetime], rpo: timedelta, period: Interval, start: datetime | None
) -> RpoAttainment:
    """RPO attainment over ``period`` of a target measured from ``start`` (``obliged_from``)."""
    if rpo <= timedelta(0):
        raise ValueError("the RPO must be positive")
    if period.empty:
        raise ValueError("the period must not be empty")
    if start is None:
        return RpoAttainment(window=None, reason=NOT_IN_SERVICE)
    window = Interval(max(period.start, start), period.end)
    if window.empty:
        return RpoAttainment(window=None, reason=NOT_YET_DUE)
    covered = clip((Interval(at, at + rpo) for at in good_finished_at), window)
    gaps = complement(covered, window)
    return RpoAttainment(
        window=window,
        covered=tuple(covered),
        gaps=tuple(gaps),
        percent=percent_floor(total(covered), window.duration),
    )


@dataclass(frozen=True)
class DrillOutcome:
    """One drill as the attainment needs it: did it succeed, and how long it took (None: unknown)."""

    ok: bool
    rto: timedelta | None


@dataclass(frozen=True)
class RtoAttainment:
    objective: timedelta | None
    drills: int = 0  # drills that ended in the period
    met: int = 0  # of those, succeeded within the objective
    percent: float | None = None
    reason: str | None = None
    worst: timedelta | None = None  # the longest measured RTO of a succeeded drill
    outcomes: list[DrillOutcome] = field(default_factory=list, repr=False)


def rto_attainment(outcomes: Iterable[DrillOutcome], objective: timedelta | None) -> RtoAttainment:
    """The share of ended drills that succeeded within ``objective`` (None without an objective)."""
    ended = list(outcomes)
    worst = max((o.rto for o in ended if o.ok and o.rto is not None), default=None)
    if objective is None:
        return RtoAttainment(objective=None, drills=len(ended), reason=NO_OBJECTIVE, worst=worst, outcomes=ended)
    if not ended:
        return RtoAttainment(objective=objective, reason=NO_DRILLS, outcomes=ended)
    met = sum(1 for o in ended if o.ok and o.rto is not None and o.rto <= objective)
    return RtoAttainment(
        objective=objective,
        drills=len(ended),
        met=met,
        percent=math.floor(met * 10_000 / len(ended)) / 100,
        worst=worst,
        outcomes=ended,
    )
