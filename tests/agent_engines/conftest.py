"""Fixtures for engine tests against the real local PostgreSQL and MariaDB servers and SQLite."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from backup_agent.engines.base import DumpOutcome, Engine, InvalidDumpError
from backup_agent.engines.config import SecretRef

from .real_databases import (  # noqa: F401 - fixtures must be visible here
    MARIADB,
    PG,
    mariadb,
    mariadb_server,
    postgres_server,
    psql,
    unique,
)


@pytest.fixture
def pg_databases(postgres_server: None) -> Iterator[Callable[[str], str]]:  # noqa: F811 - the fixture
    """Hands out unique database names (not created) and drops them all afterwards."""
    names: list[str] = []

    def make(prefix: str = "bk_test") -> str:
        names.append(unique(prefix))
        return names[-1]

    yield make
    for name in names:
        quoted = name.replace('"', '""')
        psql("postgres", f'DROP DATABASE IF EXISTS "{quoted}" WITH (FORCE);', check=False)


@pytest.fixture
def maria_databases(mariadb_server: None) -> Iterator[Callable[[str], str]]:  # noqa: F811 - the fixture
    names: list[str] = []

    def make(prefix: str = "bk_test") -> str:
        names.append(unique(prefix))
        return names[-1]

    yield make
    for name in names:
        quoted = name.replace("`", "``")
        mariadb(f"DROP DATABASE IF EXISTS `{quoted}`;", check=False)


@pytest.fixture
def env_resolve(monkeypatch: pytest.MonkeyPatch) -> Callable[[SecretRef], str]:
    """A resolver for ``{env: VAR}`` references (the agent's real resolver lives elsewhere)."""

    def resolve(ref: SecretRef) -> str:
        assert ref.env is not None
        return os.environ[ref.env]

    return resolve


@dataclass
class DumpResult:
    data: bytes
    outcome: DumpOutcome
    facts: dict[str, Any] | None
    error: Exception | None


def run_dump(engine: Engine) -> DumpResult:
    """Run a dump to the end, feeding the validator in small chunks as the pipeline would."""
    running = engine.start_dump()
    validator = engine.validator()
    chunks = []
    error: InvalidDumpError | None = None
    while chunk := running.stream.read(65536):
        chunks.append(chunk)
        if error is None:
            try:
                validator.feed(chunk)
            except InvalidDumpError as exc:
                error = exc
    outcome = running.wait()
    try:
        facts = validator.finish() if error is None else None
    except InvalidDumpError as exc:
        error = exc
        facts = None
    return DumpResult(b"".join(chunks), outcome, facts, error)


def validate(engine: Engine, data: bytes, step: int = 8192) -> dict[str, Any]:
    validator = engine.validator()
    for i in range(0, len(data), step):
        validator.feed(data[i : i + step])
    return validator.finish()
