from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backup_functions.clock import SystemClock, frozen_clock


def test_the_system_clock_reads_the_pinned_moment_only_inside_the_block() -> None:
    moment = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    clock = SystemClock()
    with frozen_clock(moment):
        assert clock.now() == moment
        with frozen_clock(None):
            assert clock.now() == moment
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_naive_moment_is_refused() -> None:
    naive = datetime(2030, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"), frozen_clock(naive):
        pass
