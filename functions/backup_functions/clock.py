"""An injectable clock, so that domain logic and tests run on simulated time (no sleeping)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


_pinned: datetime | None = None


class SystemClock:
    """Wall-clock time, which every handler uses by default — unless the local pipeline has pinned it
    with ``frozen_clock`` to play a schedule tick at a chosen instant (there are no schedules in moto)."""

    def now(self) -> datetime:
        return _pinned if _pinned is not None else datetime.now(UTC)


@contextmanager
def frozen_clock(moment: datetime | None) -> Iterator[None]:
    """Within the block, ``SystemClock().now()`` returns ``moment``; ``None`` leaves the clock alone."""
    global _pinned  # noqa: PLW0603 - one process-wide clock, pinned only by the local pipeline
    if moment is not None and moment.tzinfo is None:
        raise ValueError("frozen_clock needs a timezone-aware moment")
    saved, _pinned = _pinned, (moment.astimezone(UTC) if moment is not None else _pinned)
    try:
        yield
    finally:
        _pinned = saved


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
