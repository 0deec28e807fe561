"""The real local PostgreSQL and MariaDB servers, for every test that dumps or restores them: how to
reach them, small client runners, unique names, and fixtures that skip with a reason only when a
server is unreachable."""

from __future__ import annotations

import subprocess
import uuid

import pytest

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
