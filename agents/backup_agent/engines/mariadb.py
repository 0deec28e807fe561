"""MariaDB/MySQL: ``mariadb-dump`` (else ``mysqldump``), restore by piping into ``mariadb`` (else ``mysql``).

Dump flags: ``--single-transaction --routines --triggers --events --hex-blob
--default-character-set=utf8mb4`` and the database name as a plain argument, deliberately **without**
``--databases``: the dump then contains no ``CREATE DATABASE``/``USE`` statements and restores into
whichever database the client connects to, which is what clone restores into another name need.
``--single-transaction`` gives a consistent snapshot of InnoDB tables only (MyISAM/Aria tables are
not locked); routines and events come from the same run.

The password (when configured) is written to a 0600 ``[client]`` option file in a private temp dir
and passed as ``--defaults-extra-file=<path>`` — the first argument, a path, never the secret.
``-p``/``--password`` and ``MYSQL_PWD`` are never used (an inherited ``MYSQL_PWD`` is removed).

Restore modes:
- ``clone``/``drill``: a missing destination is created with the source database's default character
  set, collation and comment (recorded in the manifest: ``database_properties``), so routines,
  triggers and events compare strings as they did in the source; an existing destination with tables
  is refused, an empty one keeps its own properties; on failure a database this call created is
  dropped again.
- ``in-place``: the dump's ``DROP TABLE IF EXISTS``/``CREATE TABLE``/``INSERT`` replace each dumped
  table. MariaDB DDL is not transactional: a failure leaves the database partially restored, which
  the error says (the restore executor takes a safety backup first). Tables created after the backup
  are left alone and listed as ``extra_tables``.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from backup_agent import proc
from backup_agent.engines.base import EngineError, RestoreMode, RestoreReport, Versions
from backup_agent.engines.config import MariaDBConfig
from backup_agent.engines.database import ClientSecrets, DatabaseEngine, run_client
from backup_agent.engines.running import ProcessDump
from backup_agent.engines.validators import MariaDBSqlValidator
from backup_contracts.redaction import option_file_escape

log = logging.getLogger(__name__)


def option_value(value: str) -> str:
    """Quote a value for a MySQL/MariaDB option file (the escaping the redaction module also masks)."""
    return f'"{option_file_escape(value)}"'


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def sql_ident(value: str) -> str:
    return "`" + value.replace("`", "``") + "`"


_CHARSET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_PROPERTY_SQL = {
    "character_set": "default_character_set_name",
    "collation": "default_collation_name",
    "comment": "schema_comment",  # MariaDB 10.5+; MySQL has no database comments
}


class MariaDBEngine(DatabaseEngine[MariaDBConfig]):
    name = "mariadb"
    format = "mariadb-sql"
    extension = "sql"
    compared_properties = "character set, collation, comment"

    def _binary(self, configured: str | None, candidates: tuple[str, ...]) -> str:
        if configured:
            return configured
        for candidate in candidates:
            if shutil.which(candidate):
                return candidate
        return candidates[0]

    @property
    def dump_binary(self) -> str:
        return self._binary(self.config.dump_binary, ("mariadb-dump", "mysqldump"))

    @property
    def client_binary(self) -> str:
        return self._binary(self.config.client_binary, ("mariadb", "mysql"))

    def _password_for_client(self, password: str, files: proc.SecretFiles, redact: proc.Redactor) -> ClientSecrets:
        path = files.write("my.cnf", f"[client]\npassword={option_value(password)}\n")
        env = proc.child_env(drop=("MYSQL_PWD",), secrets=[password])
        return ClientSecrets(env, redact, files, [f"--defaults-extra-file={path}"])

    def _connection_args(self) -> list[str]:
        c = self.config
        return [f"--host={c.host}", f"--port={c.port}", f"--user={c.user}", "--default-character-set=utf8mb4"]

    def dump_argv(self, leading: list[str]) -> list[str]:
        return [
            self.dump_binary,
            *leading,
            *self._connection_args(),
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            self.config.database,
        ]

    def _client_argv(self, leading: list[str], database: str | None) -> list[str]:
        argv = [self.client_binary, *leading, *self._connection_args(), "--binary-mode"]
        return [*argv, database] if database else argv

    def _query(self, sql: str, *, database: str | None = None, stage: str = "restore") -> list[list[str]]:
        secrets = self._secrets()
        argv = [*self._client_argv(secrets.options, database), "--batch", "--skip-column-names", "--raw"]
        out = run_client(argv, secrets, sql, tool=self.client_binary, stage=stage)
        return [line.split("\t") for line in out.splitlines() if line]

    def versions(self) -> Versions:
        code, out, _ = proc.run_capture([self.dump_binary, "--version"], env=None, redact=proc.Redactor())
        tool = out.strip() if code == 0 else None
        warnings: list[str] = []
        server: str | None = None
        try:
            rows = self._query("SELECT VERSION();", stage="check")
            server = rows[0][0] if rows else None
        except EngineError as exc:
            warnings.append(f"cannot read the server version: {exc}")
        return Versions(tool_version=tool, server_version=server, warnings=tuple(warnings))

    def check(self) -> list[str]:
        problems = [
            f"{tool} not found on PATH. Fix: install the MariaDB client or set dump_binary/client_binary"
            for tool in (self.dump_binary, self.client_binary)
            if shutil.which(tool) is None
        ]
        if problems:
            return problems
        try:
            rows = self._query(self._schema_exists_sql(self.config.database), stage="check")
        except EngineError as exc:
            return [f"cannot connect to {self.config.host}:{self.config.port}: {exc}"]
        self.absent = not rows or rows[0][0] == "0"
        problems.extend(self.versions().warnings)
        return problems

    def database_properties_of(self, db: str, *, stage: str = "restore") -> dict[str, Any]:
        where = f"FROM information_schema.schemata WHERE schema_name = {sql_string(db)};"
        names = list(_PROPERTY_SQL)
        try:
            rows = self._query(f"SELECT {', '.join(_PROPERTY_SQL.values())} {where}", stage=stage)
        except EngineError:  # a server without database comments
            names = names[:2]
            rows = self._query(f"SELECT {', '.join(list(_PROPERTY_SQL.values())[:2])} {where}", stage=stage)
        if not rows:
            return {}
        return {name: value for name, value in zip(names, rows[0], strict=False) if value not in ("", "NULL")}

    def start_dump(self) -> ProcessDump:
        secrets = self._secrets()
        return ProcessDump(
            self.dump_argv(secrets.options),
            env=secrets.env,
            redact=secrets.redact,
            cleanup=secrets.files.cleanup,
            grace=self._grace,
        )

    def validator(self) -> MariaDBSqlValidator:
        return MariaDBSqlValidator()

    @staticmethod
    def _schema_exists_sql(db: str) -> str:
        # values are quoted with sql_string, identifiers with sql_ident, in every generated statement
        return f"SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = {sql_string(db)};"  # noqa: S608

    def _tables(self, db: str) -> list[str]:
        rows = self._query(
            "SELECT table_name FROM information_schema.tables"  # noqa: S608 - quoted with sql_string
            f" WHERE table_schema = {sql_string(db)} AND table_type = 'BASE TABLE' ORDER BY table_name;"
        )
        return [row[0] for row in rows]

    def drop_restored(self) -> str:
        """Drop this target's database: cleanup of a drill/clone scratch destination. Destroys its data."""
        self._query(f"DROP DATABASE IF EXISTS {sql_ident(self.config.database)};", stage="cleanup")
        return f"dropped database {self.config.database}"

    def restore(
        self, stream: BinaryIO, *, mode: RestoreMode, properties: Mapping[str, Any] | None = None
    ) -> RestoreReport:
        validator = MariaDBSqlValidator()
        destination = self.restore_database(
            stream,
            mode=mode,
            validator=validator,
            tool=self.client_binary,
            left_behind="partially restored (MariaDB DDL is not transactional)",
            properties=properties,
        )
        db = self.config.database
        verification = self._verify(db, validator, mode)
        verification.update(self.compare_properties(db, properties or {}, destination))
        return RestoreReport(
            destination=f"mariadb://{self.config.host}:{self.config.port}/{db}", verification=verification
        )

    def property_differences(self, source: Mapping[str, Any], restored: Mapping[str, Any]) -> list[str]:
        return [
            f"{name} {restored.get(name)!r} (the source had {source.get(name)!r})"
            for name in _PROPERTY_SQL
            if name in source and source.get(name) != restored.get(name)
        ]

    # ---------------------------------------------------------------- restore steps (see DatabaseEngine)

    def _database_exists(self, db: str) -> bool:
        return self._query(self._schema_exists_sql(db))[0][0] != "0"

    def _create_database(self, db: str, properties: Mapping[str, Any]) -> list[str]:
        charset = str(properties.get("character_set") or "utf8mb4")
        collation = properties.get("collation")
        for value in (charset, collation):
            if value is not None and not _CHARSET_NAME.match(str(value)):
                raise EngineError(
                    f"the backup names an implausible character set or collation {value!r}", stage="restore"
                )
        create = f"CREATE DATABASE {sql_ident(db)} CHARACTER SET {charset}"
        if collation:
            create += f" COLLATE {collation}"
        if properties.get("comment"):
            create += f" COMMENT {sql_string(str(properties['comment']))}"
        try:
            self._query(create + ";")
        except EngineError as exc:
            raise EngineError(
                f"cannot create the clone destination {db!r} like the source (character set {charset},"
                f" collation {collation}), nothing was created: {exc}. Fix: use a server that has them, or"
                " create the database by hand: an existing empty database is restored into as it is",
                stage="restore",
                exit_code=exc.exit_code,
                stderr_tail=exc.stderr_tail,
            ) from exc
        return []

    def _holds_data(self, db: str) -> bool:
        return bool(self._tables(db))

    def _drop_created_database(self, db: str) -> None:
        self._query(f"DROP DATABASE IF EXISTS {sql_ident(db)};")

    def _restore_argv(
        self, mode: RestoreMode, db: str, secrets: ClientSecrets, archive: Path | None = None
    ) -> list[str]:
        return self._client_argv(secrets.options, db)

    def _verify(self, db: str, validator: MariaDBSqlValidator, mode: RestoreMode) -> dict[str, Any]:
        tables = self._tables(db)
        rows: dict[str, int] = {}
        if tables:
            union = " UNION ALL ".join(
                f"SELECT {sql_string(t)}, COUNT(*) FROM {sql_ident(db)}.{sql_ident(t)}"  # noqa: S608 - quoted
                for t in tables
            )
            rows = {name: int(count) for name, count in self._query(union + ";")}
        verification: dict[str, Any] = {
            "tables": len(tables),
            "archive_tables": validator.create_tables,
            "rows": rows,
            "total_rows": sum(rows.values()),
            "bytes": validator.finish()["bytes"],
        }
        if mode == "in-place":
            verification["extra_tables"] = sorted(set(tables) - set(validator.table_names))
        return verification
