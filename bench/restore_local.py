"""The database servers' side of ``bench.restore``: the local restores, the dumps they read, housekeeping.

The local pipelines (``pg_restore``, ``pg_restore -j N``, ``mariadb < dump.sql``) as the commands
people run; the untimed parts around every run (row counts compared with the source, the database
dropped, the previous run's dirty pages written); and the servers' versions and settings.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import datasets as pg
from bench import mariadb_datasets as my
from bench.harness import first_line, machine_facts

PG_CONN = ["-h", pg.PG_HOST, "-p", pg.PG_PORT, "-U", pg.PG_USER, "-w"]
MY_CONN = my.client_argv()[1:]
PG_ROWS = """
SELECT table_schema || '.' || table_name,
       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name),
                                            false, true, '')))[1]::text
FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1;
"""


def row_counts(engine: str, database: str) -> dict[str, int]:
    if engine == "postgresql":
        out = pg.psql(PG_ROWS, database=database)
        return {line.split("|")[0]: int(line.split("|")[1]) for line in out.splitlines() if "|" in line}
    tables = my.sql(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{database}'"
        " AND table_type = 'BASE TABLE' ORDER BY 1"
    ).split()
    out = my.sql(" UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM `{database}`.`{t}`" for t in tables))
    return {line.split("\t")[0]: int(line.split("\t")[1]) for line in out.splitlines()}


def drop(engine: str, database: str) -> None:
    if engine == "postgresql":
        pg.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    else:
        my.sql(f"DROP DATABASE IF EXISTS `{database}`")


def settle(engine: str) -> None:
    """Untimed, before each run: the previous run's dirty pages written, so no run pays for another."""
    if engine == "postgresql":
        pg.psql("CHECKPOINT")
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dirty = my.sql(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
            " WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'"
        )
        if int(dirty or "0") < 100:
            return
        time.sleep(1)


def dump_locally(engine: str, database: str, path: Path, timeout: float) -> int:
    """The local pipelines' input, made once per database (untimed)."""
    if engine == "postgresql":
        argv = ["pg_dump", *PG_CONN, "-Fc", "-Z0", "-f", str(path), database]
    else:
        argv = ["mariadb-dump", *MY_CONN, "--single-transaction", "--routines", "--triggers", "--events"]
        argv += ["--hex-blob", "--result-file", str(path), database]
    subprocess.run(argv, check=True, timeout=timeout, capture_output=True)
    return path.stat().st_size


def local_command(engine: str, pipeline: str, database: str, dump_path: str, jobs: int) -> list[str]:
    """The timed command of a local pipeline: create the database, restore the dump into it."""
    if engine == "postgresql":
        create = shlex.join(["createdb", *PG_CONN, "-T", "template0", database])
        parallel = ["-j", str(jobs)] if pipeline == "pg_restore-jN" else []
        restore = shlex.join(
            ["pg_restore", *PG_CONN, "--no-owner", "--exit-on-error", *parallel, "-d", database, dump_path]
        )
        return ["bash", "-c", f"set -e; {create}; {restore}"]
    create = shlex.join(["mariadb", *MY_CONN, "-e", f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"])
    restore = shlex.join(["mariadb", *MY_CONN, database])
    return ["bash", "-c", f"set -e; {create}; {restore} < {shlex.quote(dump_path)}"]


def generators_running() -> list[int]:
    """Processes generating benchmark databases (``bench.datasets`` / ``bench.mariadb_datasets``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"-m" in argv and any(a in (b"bench.datasets", b"bench.mariadb_datasets") for a in argv):
                found.append(int(entry))
    return found


def machine() -> dict[str, Any]:
    pg_settings = "shared_buffers,max_wal_size,wal_level,synchronous_commit,maintenance_work_mem"
    my_settings = "innodb_buffer_pool_size,innodb_flush_log_at_trx_commit,innodb_log_file_size"
    return machine_facts(
        pg_restore=first_line("pg_restore", "--version"),
        postgresql=pg.psql("SHOW server_version"),
        postgresql_settings=pg.psql(
            "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ') FROM pg_settings"
            f" WHERE name = ANY (string_to_array('{pg_settings}', ','))"
        ),
        mariadb=first_line("mariadb", "--version"),
        mariadb_server=my.sql("SELECT VERSION()"),
        mariadb_settings=my.sql(
            "SELECT GROUP_CONCAT(CONCAT(VARIABLE_NAME, '=', VARIABLE_VALUE) SEPARATOR ' ')"
            f" FROM information_schema.GLOBAL_VARIABLES WHERE FIND_IN_SET(LOWER(VARIABLE_NAME), '{my_settings}')"
        ),
    )
