"""Fixtures for engine tests against the real local PostgreSQL and MariaDB servers and SQLite."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from backup_agent.engines.base import DumpOutcome, Engine, InvalidDumpError
from backup_agent.engines.config import SecretRef
from backup_agent.engines.postgresql import conninfo_quote

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}


def psql(db: str, sql: str, *, check: bool = True) -> str:
    result = subprocess.run(
        [
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            PG["host"],
            "-p",
            str(PG["port"]),
            "-U",
            PG["user"],
            "-d",
            f"dbname={conninfo_quote(db)}",
            "-f",
            "-",
        ],
        input=sql.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"psql failed: {result.stderr.decode()}")
    return result.stdout.decode()


def mariadb(sql: str, db: str | None = None, *, check: bool = True) -> str:
    argv = [
        "mariadb",
        f"--host={MARIADB['host']}",
        f"--port={MARIADB['port']}",
        f"--user={MARIADB['user']}",
        "--batch",
        "--skip-column-names",
        "--default-character-set=utf8mb4",
    ]
    result = subprocess.run(
        [*argv, *([db] if db else [])], input=sql.encode(), capture_output=True, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"mariadb failed: {result.stderr.decode()}")
    return result.stdout.decode()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def postgres_server() -> None:
    try:
        psql("postgres", "SELECT 1;")
    except (AssertionError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"PostgreSQL at {PG['host']}:{PG['port']} is unreachable: {exc}")


@pytest.fixture(scope="session")
def mariadb_server() -> None:
    try:
        mariadb("SELECT 1;")
    except (AssertionError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"MariaDB at {MARIADB['host']}:{MARIADB['port']} is unreachable: {exc}")


@pytest.fixture
def pg_databases(postgres_server: None) -> Iterator[Callable[[str], str]]:
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
def maria_databases(mariadb_server: None) -> Iterator[Callable[[str], str]]:
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
