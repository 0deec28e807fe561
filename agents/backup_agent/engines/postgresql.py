"""PostgreSQL: ``pg_dump --format=custom --compress=0`` per database, restore with ``pg_restore``.

The password (when configured) reaches pg_dump/pg_restore/psql only through a ``PGPASSFILE`` — a
0600 file in a private 0700 temp dir, deleted when the child is reaped — never argv, and an inherited
``PGPASSWORD`` is removed from the child's environment so the file is authoritative. Connection
parameters travel as one quoted conninfo string (``host=... port=... user=... dbname=...``), so no
database name can be mistaken for an option.

Restore modes:
- ``clone``/``drill``: the destination database is created (``TEMPLATE template0``) when missing; an
  existing destination must be empty (no tables, views, sequences...) or the restore is refused.
  ``pg_restore --no-owner --exit-on-error``; when it fails, a database this call created is dropped.
- ``in-place``: ``pg_restore --clean --if-exists --no-owner --exit-on-error --single-transaction``,
  so a failure rolls everything back. Objects created after the backup that are not in the archive
  are left alone and listed as ``extra_tables`` in the verification.
"""

from __future__ import annotations

import logging
import re
import shutil
from typing import BinaryIO

from backup_agent import proc
from backup_agent.engines.base import EngineError, RestoreMode, RestoreReport, Versions
from backup_agent.engines.config import PostgresConfig
from backup_agent.engines.database import ClientSecrets, DatabaseEngine, run_client
from backup_agent.engines.running import ProcessDump
from backup_agent.engines.validators import PgCustomValidator
from backup_contracts.redaction import conninfo_escape, pgpass_escape

log = logging.getLogger(__name__)

_USER_RELATIONS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%';
"""

# pg_restore options: a clone restores into an empty database; in place, every archived object is
# dropped and recreated in one transaction, so a failure rolls everything back.
_CLONE_RESTORE = ("--no-owner", "--exit-on-error", "--no-password")
_IN_PLACE_RESTORE = ("--clean", "--if-exists", "--no-owner", "--exit-on-error", "--single-transaction", "--no-password")

_ROW_COUNTS = """
SELECT table_schema || '.' || table_name,
       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name),
                                            false, true, '')))[1]::text
FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1;
"""


def conninfo_quote(value: str) -> str:
    return f"'{conninfo_escape(value)}'"


def major_version(text: str | None) -> int | None:
    """15 from '15.20 (Debian ...)' or 'pg_dump (PostgreSQL) 15.20'; 9 for '9.6.24'."""
    if not text:
        return None
    match = re.search(r"PostgreSQL\)\s*(\d+)", text) or re.search(r"(\d+)", text)
    return int(match.group(1)) if match else None


class PostgresEngine(DatabaseEngine[PostgresConfig]):
    name = "postgresql"
    format = "pg_dump-custom"
    extension = "pgdump"

    # ---------------------------------------------------------------- connection plumbing

    def conninfo(self, database: str | None = None) -> str:
        c = self.config
        parts = {
            "host": c.host,
            "port": str(c.port),
            "user": c.user,
            "dbname": database or c.database,
            "connect_timeout": "10",
            "application_name": "backup-agent",
        }
        if c.sslmode:
            parts["sslmode"] = c.sslmode
        return " ".join(f"{key}={conninfo_quote(value)}" for key, value in parts.items())

    def _password_for_client(self, password: str, files: proc.SecretFiles, redact: proc.Redactor) -> ClientSecrets:
        passfile = files.write("pgpass", f"*:*:*:*:{pgpass_escape(password)}\n")
        env = proc.child_env({"PGPASSFILE": passfile}, drop=("PGPASSWORD",), secrets=[password])
        return ClientSecrets(env, redact, files)

    def dump_argv(self) -> list[str]:
        return [self.config.pg_dump, "--format=custom", "--compress=0", "--no-password", "--dbname", self.conninfo()]

    def _psql(
        self,
        sql: str,
        *,
        database: str | None = None,
        variables: dict[str, str] | None = None,
        stage: str = "restore",
    ) -> str:
        secrets = self._secrets()
        argv = [self.config.psql, "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-F", "\t"]
        for key, value in (variables or {}).items():
            argv += ["-v", f"{key}={value}"]
        argv += ["-d", self.conninfo(database), "-f", "-"]
        return run_client(argv, secrets, sql, tool="psql", stage=stage)

    def _about_database(self, sql: str, db: str, *, stage: str = "restore") -> str:
        """Run ``sql`` on the maintenance database with ``db`` as its ``dbname`` variable."""
        return self._psql(sql, database=self.config.maintenance_database, variables={"dbname": db}, stage=stage)

    # ---------------------------------------------------------------- Engine protocol

    def versions(self) -> Versions:
        code, out, _err = proc.run_capture([self.config.pg_dump, "--version"], env=None, redact=proc.Redactor())
        tool = out.strip() if code == 0 else None
        server: str | None = None
        warnings: list[str] = []
        try:
            server = self._psql("SHOW server_version;", stage="check").strip() or None
        except EngineError as exc:
            warnings.append(f"cannot read the server version: {exc}")
        client_major, server_major = major_version(tool), major_version(server)
        if client_major is not None and server_major is not None and client_major < server_major:
            warnings.append(
                f"pg_dump {client_major} is older than the server ({server_major}); pg_dump refuses newer servers."
                f" Fix: install postgresql-client-{server_major} and set pg_dump/pg_restore in the target config"
            )
        for warning in warnings:
            log.warning("%s: %s", self.target, warning)
        return Versions(tool_version=tool, server_version=server, warnings=tuple(warnings))

    def check(self) -> list[str]:
        problems = [
            f"{tool} not found on PATH. Fix: install the PostgreSQL client or set {key} in the target config"
            for key, tool in (
                ("pg_dump", self.config.pg_dump),
                ("pg_restore", self.config.pg_restore),
                ("psql", self.config.psql),
            )
            if shutil.which(tool) is None
        ]
        if problems:
            return problems
        try:
            self._psql("SELECT 1;", stage="check")
        except EngineError as exc:
            return [f"cannot connect to {self.config.host}:{self.config.port}/{self.config.database}: {exc}"]
        problems.extend(self.versions().warnings)
        return problems

    def start_dump(self) -> ProcessDump:
        secrets = self._secrets()
        return ProcessDump(
            self.dump_argv(), env=secrets.env, redact=secrets.redact, cleanup=secrets.files.cleanup, grace=self._grace
        )

    def validator(self) -> PgCustomValidator:
        return PgCustomValidator()

    def restore(self, stream: BinaryIO, *, mode: RestoreMode) -> RestoreReport:
        validator = PgCustomValidator()
        left_behind = "rolled back (single transaction)" if mode == "in-place" else "partially restored"
        self.restore_database(stream, mode=mode, validator=validator, tool="pg_restore", left_behind=left_behind)
        db = self.config.database
        return RestoreReport(
            destination=f"postgresql://{self.config.host}:{self.config.port}/{db}",
            verification=self._verify(db, validator),
        )

    def drop_restored(self) -> str:
        """Drop this target's database: cleanup of a drill/clone scratch destination. Destroys its data."""
        self._about_database('DROP DATABASE IF EXISTS :"dbname" WITH (FORCE);', self.config.database, stage="cleanup")
        return f"dropped database {self.config.database}"

    # ---------------------------------------------------------------- restore steps (see DatabaseEngine)

    def _database_exists(self, db: str) -> bool:
        return self._about_database("SELECT count(*) FROM pg_database WHERE datname = :'dbname';", db).strip() != "0"

    def _create_database(self, db: str) -> None:
        self._about_database('CREATE DATABASE :"dbname" TEMPLATE template0;', db)

    def _holds_data(self, db: str) -> bool:
        return int(self._psql(_USER_RELATIONS, database=db).strip() or "0") > 0

    def _drop_created_database(self, db: str) -> None:
        self._about_database('DROP DATABASE IF EXISTS :"dbname";', db)

    def _restore_argv(self, mode: RestoreMode, db: str, secrets: ClientSecrets) -> list[str]:
        options = _IN_PLACE_RESTORE if mode == "in-place" else _CLONE_RESTORE
        return [self.config.pg_restore, *options, "--dbname", self.conninfo(db)]

    def _verify(self, db: str, validator: PgCustomValidator) -> dict[str, object]:
        rows: dict[str, int] = {}
        for line in self._psql(_ROW_COUNTS, database=db).splitlines():
            if "\t" in line:
                name, count = line.split("\t", 1)
                rows[name] = int(count)
        archived = set(validator.table_names)
        return {
            "tables": len(rows),
            "archive_tables": validator.tables,
            "rows": rows,
            "total_rows": sum(rows.values()),
            "missing_tables": sorted(archived - set(rows)),
            "extra_tables": sorted(set(rows) - archived) if archived else [],
            "large_objects": validator.large_objects,
            "bytes": validator.finish()["bytes"],
        }
