"""Fixtures for the point-in-time recovery tests: throwaway PostgreSQL clusters (tests/pitr/cluster.py)."""

from __future__ import annotations

import pytest

from tests.pitr.cluster import unavailable_reason


@pytest.fixture
def cluster_support() -> None:
    """Skip, saying why, where throwaway clusters cannot run (no PostgreSQL server binaries)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
