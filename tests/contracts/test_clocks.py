"""The clocks: wall-clock time for the functions, chosen instants for the local pipeline and tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backup_functions.clock import SystemClock
from local_pipeline.clock import PipelineClock, SimulatedClock

pytestmark = pytest.mark.unit

MOMENT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_the_system_clock_is_wall_clock_time_in_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_the_pipeline_clock_reads_the_played_moment_only_inside_the_block() -> None:
    clock = PipelineClock()
    with clock.at(MOMENT):
        assert clock.now() == MOMENT
        with clock.at(None):
            assert clock.now() == MOMENT
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_naive_moment_is_refused() -> None:
    naive = datetime(2030, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"), PipelineClock().at(naive):
        pass
    with pytest.raises(ValueError, match="timezone-aware"):
        SimulatedClock(naive)


def test_the_simulated_clock_only_moves_forward() -> None:
    clock = SimulatedClock(MOMENT)
    assert clock.advance(timedelta(hours=1)) == MOMENT + timedelta(hours=1)
    with pytest.raises(ValueError, match="forward"):
        clock.set(MOMENT)
