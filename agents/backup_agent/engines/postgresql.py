"""PostgreSQL: ``pg_dump --format=custom --compress=0`` per database, restore with ``pg_restore``.

The password (when configured) reaches pg_dump/pg_restore/psql only through a ``PGPASSFILE`` — a
0600 file in a private 0700 temp dir, deleted when the child is reaped — never argv, and an inherited
``PGPASSWORD`` is removed from the child's environment so the file is authoritative. Connection
parameters travel as one quoted conninfo string (``host=... port=... user=... dbname=...``), so no
database name can be mistaken for an option.

Restore modes:
- ``clone``/``drill``: the destination database is created when missing, with the source database's
  encoding, locale (provider), ``ALTER DATABASE … SET`` settings, comment and owner (when that role
  exists here) from the manifest (``pg_properties``); an existing destination must be empty (no tables,
  views, sequences...) or the restore is refused, and keeps its own properties.
  ``pg_restore --no-owner --exit-on-error``, with ``--jobs N`` when the restore executor hands over a
  verified seekable archive (``restore_jobs``, default: the host's cores); when it fails, a database
  this call created is dropped.
- ``in-place``: ``pg_restore --clean --if-exists --no-owner --exit-on-error --single-transaction``,
  so a failure rolls everything back. Objects created after the backup that are not in the archive
  are left alone and listed as ``extra_tables`` in the verification. Always one job: parallel
  pg_restore cannot run in a single transaction.

Verification counts the rows of every leaf table (``FROM ONLY``: a partitioned or inherited parent
does not count its children's rows again) and compares them with the archive's own per-table row
counts; a clone's database properties are compared with the source's.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from backup_agent import proc
from backup_agent.engines import pg_properties
from backup_agent.engines.base import EngineError, RestoreMode, RestoreReport, Versions
from backup_agent.engines.config import PostgresConfig, PostgresPhysicalConfig
from backup_agent.engines.database import ClientSecrets, DatabaseEngine, VerifiedArchive, run_client
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

# Tables (plain and partitioned) with the rows of each leaf: FROM ONLY, so no row is counted twice.
_ROW_COUNTS = """
SELECT n.nspname || '.' || c.relname, c.relkind,
       CASE WHEN c.relkind = 'r' THEN (xpath('/row/c/text()', query_to_xml(
            format('SELECT count(*) AS c FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
       END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1;
"""


def conninfo_quote(value: str) -> str:
    return f"'{conninfo_escape(value)}'"


def pg_conninfo(config: PostgresConfig | PostgresPhysicalConfig, database: str | None = None) -> str:
    """One quoted conninfo string for psql, pg_dump, pg_restore and pg_basebackup (no option injection)."""
    parts = {
        "host": config.host,
        "port": str(config.port),
        "user": config.user,
        "dbname": database or config.database,
        "connect_timeout": "10",
        "application_name": "backup-agent",
    }
    if config.sslmode:
        parts["sslmode"] = config.sslmode
    return " ".join(f"{key}={conninfo_quote(value)}" for key, value in parts.items())


def pgpass_secrets(password: str, files: proc.SecretFiles, redact: proc.Redactor) -> ClientSecrets:
    """``password`` in a PGPASSFILE for one client run; an inherited PGPASSWORD is dropped so the file rules."""
    passfile = files.write("pgpass", f"*:*:*:*:{pgpass_escape(password)}\n")
    env = proc.child_env({"PGPASSFILE": passfile}, drop=("PGPASSWORD",), secrets=[password])
    return ClientSecrets(env, redact, files)


def client_too_old(tool: str, tool_version: str | None, server_version: str | None, *, setting: str) -> str | None:
    """The warning when a client tool is older than its server (pg_dump and pg_basebackup refuse newer ones)."""
    client_major, server_major = major_version(tool_version), major_version(server_version)
    if client_major is None or server_major is None or client_major >= server_major:
        return None
    return (
        f"{tool} {client_major} is older than the server ({server_major}) and refuses it."
        f" Fix: install postgresql-client-{server_major} and set {setting} in the target config"
    )


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
    seekable_restore = True
    compared_properties = "encoding, locale, settings, comment"

    # ---------------------------------------------------------------- connection plumbing

    def conninfo(self, database: str | None = None) -> str:
        return pg_conninfo(self.config, database)

    def _password_for_client(self, password: str, files: proc.SecretFiles, redact: proc.Redactor) -> ClientSecrets:
        return pgpass_secrets(password, files, redact)

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
            maintenance = self.config.maintenance_database  # reachable before a clone destination exists
            server = self._psql("SHOW server_version;", database=maintenance, stage="check").strip() or None
        except EngineError as exc:
            warnings.append(f"cannot read the server version: {exc}")
        if too_old := client_too_old("pg_dump", tool, server, setting="pg_dump/pg_restore"):
            warnings.append(too_old)
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
        c = self.config
        exists = False
        try:
            exists = self._database_exists(c.database, stage="check")
            if exists:
                self._psql("SELECT 1;", stage="check")
        except EngineError as exc:
            return [f"cannot connect to {c.host}:{c.port}/{c.database if exists else c.maintenance_database}: {exc}"]
        self.absent = not exists
        problems.extend(self.versions().warnings)
        return problems

    def start_dump(self) -> ProcessDump:
        secrets = self._secrets()
        return ProcessDump(
            self.dump_argv(), env=secrets.env, redact=secrets.redact, cleanup=secrets.files.cleanup, grace=self._grace
        )

    def validator(self) -> PgCustomValidator:
        return PgCustomValidator()

    def restore(
        self,
        stream: BinaryIO,
        *,
        mode: RestoreMode,
        properties: Mapping[str, Any] | None = None,
        archive: VerifiedArchive | None = None,
    ) -> RestoreReport:
        if mode == "in-place":
            archive = None  # one transaction: a single job, fed from the stream
        validator = archive.validator if archive is not None else PgCustomValidator()
        assert isinstance(validator, PgCustomValidator)  # noqa: S101 - the executor asked this engine for it
        left_behind = "rolled back (single transaction)" if mode == "in-place" else "partially restored"
        destination = self.restore_database(
            stream,
            mode=mode,
            validator=validator,
            tool="pg_restore",
            left_behind=left_behind,
            properties=properties,
            archive=archive,
        )
        db = self.config.database
        verification = self._verify(db, validator)
        verification["jobs"] = self._jobs() if archive is not None else 1
        verification.update(self.compare_properties(db, properties or {}, destination))
        return RestoreReport(
            destination=f"postgresql://{self.config.host}:{self.config.port}/{db}", verification=verification
        )

    def drop_restored(self) -> str:
        """Drop this target's database: cleanup of a drill/clone scratch destination. Destroys its data."""
        self._about_database('DROP DATABASE IF EXISTS :"dbname" WITH (FORCE);', self.config.database, stage="cleanup")
        return f"dropped database {self.config.database}"

    # ---------------------------------------------------------------- restore steps (see DatabaseEngine)

    def _database_exists(self, db: str, *, stage: str = "restore") -> bool:
        found = self._about_database("SELECT count(*) FROM pg_database WHERE datname = :'dbname';", db, stage=stage)
        return found.strip() != "0"

    def _create_database(self, db: str, properties: Mapping[str, Any]) -> list[str]:
        maintenance = self.config.maintenance_database
        create, variables = pg_properties.create_sql(properties)
        try:
            self._psql(create, database=maintenance, variables={"dbname": db, **variables})
        except EngineError as exc:
            wanted = ", ".join(
                f"{k} {properties[k]}"
                for k in ("encoding", "locale_provider", "collate", "locale")
                if properties.get(k)
            )
            raise EngineError(
                f"cannot create the clone destination {db!r} like the source ({wanted}), nothing was created: {exc}."
                " Fix: make that locale available on this server (e.g. locale-gen, or PostgreSQL built with ICU),"
                " or create the database by hand with the properties you want: an existing empty database is"
                " restored into as it is",
                stage="restore",
                exit_code=exc.exit_code,
                stderr_tail=exc.stderr_tail,
            ) from exc
        describe, more, notes = pg_properties.describe_sql(properties)
        try:
            if describe:
                self._psql(describe, database=maintenance, variables={"dbname": db, **more})
        except EngineError as exc:
            self._drop_created_database(db)
            raise EngineError(
                f"cannot give the clone destination {db!r} the source's settings and comment: {exc};"
                " it was dropped again",
                stage="restore",
                exit_code=exc.exit_code,
                stderr_tail=exc.stderr_tail,
            ) from exc
        owner = properties.get("owner")
        if owner:
            notes += self._set_owner(db, str(owner))
        return notes

    def _set_owner(self, db: str, owner: str) -> list[str]:
        exists = self._psql("SELECT count(*) FROM pg_roles WHERE rolname = :'owner';", variables={"owner": owner})
        if exists.strip() == "0":
            return [
                f"owner {owner!r} does not exist on this server: the database is owned by {self.config.user!r}"
                " (restore the roles first: pg_dumpall --globals-only)"
            ]
        try:
            self._psql(
                'ALTER DATABASE :"dbname" OWNER TO :"owner";',
                database=self.config.maintenance_database,
                variables={"dbname": db, "owner": owner},
            )
        except EngineError as exc:
            return [f"could not give the database to its owner {owner!r}: {exc}"]
        return []

    def _holds_data(self, db: str) -> bool:
        return int(self._psql(_USER_RELATIONS, database=db).strip() or "0") > 0

    def _drop_created_database(self, db: str) -> None:
        self._about_database('DROP DATABASE IF EXISTS :"dbname";', db)

    def _jobs(self) -> int:
        return self.config.restore_jobs or os.cpu_count() or 1

    def _restore_argv(
        self, mode: RestoreMode, db: str, secrets: ClientSecrets, archive: Path | None = None
    ) -> list[str]:
        options = _IN_PLACE_RESTORE if mode == "in-place" else _CLONE_RESTORE
        argv = [self.config.pg_restore, *options, "--dbname", self.conninfo(db)]
        if archive is None:
            return argv
        return [*argv, f"--jobs={self._jobs()}", "--", str(archive)]

    def _verify(self, db: str, validator: PgCustomValidator) -> dict[str, Any]:
        tables: set[str] = set()
        rows: dict[str, int] = {}
        for line in self._psql(_ROW_COUNTS, database=db).splitlines():
            name, _kind, count = [*line.split("\t"), "", ""][:3]
            tables.add(name)
            if count:
                rows[name] = int(count)
        archived = set(validator.table_names)
        differ = [
            f"{name}: {rows[name]} rows restored, {count} in the backup"
            for name, count in sorted(validator.rows.items())
            if name in rows and rows[name] != count
        ]
        verification: dict[str, Any] = {
            "tables": len(tables),
            "archive_tables": validator.tables,
            "rows": rows,
            "total_rows": sum(rows.values()),
            "missing_tables": sorted(archived - tables),
            "extra_tables": sorted(tables - archived) if archived else [],
            "large_objects": validator.large_objects,
            "bytes": validator.finish()["bytes"],
        }
        if not validator.compressed:
            verification["archive_rows_total"] = sum(validator.rows.values())
            verification["rows_differ"] = differ
        return verification

    def property_differences(self, source: Mapping[str, Any], restored: Mapping[str, Any]) -> list[str]:
        return pg_properties.differences(source, restored)

    def database_properties_of(self, db: str, *, stage: str = "restore") -> dict[str, Any]:
        return pg_properties.parse(self._about_database(pg_properties.READ_SQL, db, stage=stage))
