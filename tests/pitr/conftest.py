"""Fixtures for the point-in-time recovery tests: throwaway PostgreSQL clusters (tests/pitr/cluster.py)."""

from __future__ import annotations

import pytest

from tests.agent_engines.real_databases import POSTGRESQL_INSTALLED, unreachable
from tests.pitr.cluster import unavailable_reason


@pytest.fixture(scope="session")
def cluster_support() -> None:
    """Throwaway clusters need PostgreSQL's server binaries: their tests skip, saying why, where PostgreSQL
    is not installed, and fail where it is (CI), as every real-database test does (real_databases.py)."""
    reason = unavailable_reason()
    if reason:
        unreachable("PostgreSQL", f"throwaway clusters cannot run: {reason}", installed=POSTGRESQL_INSTALLED.is_dir())
