"""The real local PostgreSQL and MariaDB servers, for every test that dumps or restores them: how to
reach them, small client runners, unique names, and fixtures that need the servers.

A server that is not installed on this machine makes its tests skip, with the reason. A server that
is installed but unreachable makes them fail: CI machines have both, and a database test that
quietly skipped there would be a test that never ran (``scripts/ensure-services.sh`` starts them).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from backup_agent.engines.postgresql import conninfo_quote

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root"}
# What scripts/ensure-services.sh looks for to decide that a server is installed here.
POSTGRESQL_INSTALLED = Path("/etc/postgresql")
MARIADB_INSTALLED = Path("/usr/sbin/mariadbd")


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


def unreachable(server: str, problem: str, *, installed: bool) -> None:
    """Skip when the server is not installed here; fail when it is installed but cannot be reached."""
    if installed:
        pytest.fail(
            f"{server} is installed on this machine but {problem}; its tests must run here, not skip."
            " Fix: start it (scripts/ensure-services.sh) and re-run"
        )
    pytest.skip(f"{server} is not installed on this machine and {problem}")


@pytest.fixture(scope="session")
def postgres_server() -> None:
    try:
        psql("postgres", "SELECT 1;")
    except (AssertionError, OSError, subprocess.TimeoutExpired) as exc:
        unreachable(
            "PostgreSQL",
            f"{PG['host']}:{PG['port']} is unreachable: {exc}",
            installed=POSTGRESQL_INSTALLED.is_dir(),
        )


@pytest.fixture(scope="session")
def mariadb_server() -> None:
    try:
        mariadb("SELECT 1;")
    except (AssertionError, OSError, subprocess.TimeoutExpired) as exc:
        unreachable(
            "MariaDB",
            f"{MARIADB['host']}:{MARIADB['port']} is unreachable: {exc}",
            installed=MARIADB_INSTALLED.exists(),
        )
