"""Clocks that play chosen instants: the local pipeline's (schedules do not fire in moto, so it ticks the
functions at the instants it chooses) and a simulated one for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


class PipelineClock:
    """Wall-clock time, except while a step of the local pipeline plays a chosen instant (``at``)."""

    def __init__(self) -> None:
        self._pinned: datetime | None = None

    def now(self) -> datetime:
        return self._pinned if self._pinned is not None else datetime.now(UTC)

    @contextmanager
    def at(self, moment: datetime | None) -> Iterator[None]:
        """Within the block, ``now()`` returns ``moment``; ``None`` leaves the clock alone."""
        if moment is not None and moment.tzinfo is None:
            raise ValueError("the pipeline clock needs a timezone-aware moment")
        saved, self._pinned = self._pinned, (moment.astimezone(UTC) if moment is not None else self._pinned)
        try:
            yield
        finally:
            self._pinned = saved


class SimulatedClock:
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time only moves forward")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("SimulatedClock needs timezone-aware times")
        moment = moment.astimezone(UTC)
        if moment < self._now:
            raise ValueError("time only moves forward")
        self._now = moment
        return self._now
