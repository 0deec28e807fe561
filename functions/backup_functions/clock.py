"""An injectable clock, so that domain logic runs on any time source (tests and the local pipeline
play chosen instants: ``local_pipeline.clock``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    """Wall-clock time: what every function uses in AWS."""

    def now(self) -> datetime:
        return datetime.now(UTC)
