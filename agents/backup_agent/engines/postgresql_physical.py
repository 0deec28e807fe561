"""PostgreSQL physical backups for point-in-time recovery: ``pg_basebackup`` tar streams plus archived WAL.

A backup is ``pg_basebackup -D - -Ft -X none --manifest-checksums=SHA256 -c fast``: one tar on stdout,
validated while it streams against the server's own ``backup_manifest`` (``BaseBackupValidator``); its
facts (system identifier, timeline, start and end WAL positions and files, segment size, start time,
PostgreSQL version) go into the backup's manifest. ``-X none``: the WAL that makes the backup consistent
is the archive's (``backup-agent wal-push``), so pg_basebackup waits until it is archived.

The password reaches pg_basebackup and psql only through a ``PGPASSFILE`` (0600, private 0700 dir,
removed when the child is reaped), never argv; connection parameters travel as one quoted conninfo.

``check`` proves a source can serve point-in-time recovery: each server setting it needs (wal_level,
archive_mode, an archive_command running wal-push, archive_timeout, replication rights,
max_wal_senders) is checked and named with its fix. For a clone or drill destination (a config with
``data_directory``) it checks the server binaries, the OS user and the directory instead.

Restores replay WAL (``restore_with_wal``, see ``pg_recovery``): into a new data directory, never in
place; plain ``restore`` refuses, since a base backup alone is only consistent with its WAL.
"""

from __future__ import annotations

import logging
import shutil
from typing import BinaryIO

from backup_agent import proc
from backup_agent.engines import pg_recovery, pg_server
from backup_agent.engines.base import EngineError, Recovery, RestoreMode, RestoreReport, Versions
from backup_agent.engines.config import PostgresPhysicalConfig, Resolve
from backup_agent.engines.database import ClientSecrets, run_client
from backup_agent.engines.postgresql import client_too_old, pg_conninfo, pgpass_secrets
from backup_agent.engines.running import ProcessDump
from backup_agent.engines.validators.pg_basebackup import BaseBackupValidator

log = logging.getLogger(__name__)

_SETTINGS = """
SELECT name, setting FROM pg_settings
WHERE name IN ('wal_level', 'archive_mode', 'archive_command', 'archive_library', 'archive_timeout',
               'max_wal_senders', 'wal_segment_size')
UNION ALL SELECT 'may_replicate', (rolsuper OR rolreplication)::text FROM pg_roles WHERE rolname = current_user
UNION ALL SELECT 'tablespaces', count(*)::text FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global');
"""


def settings_problems(settings: dict[str, str], user: str) -> list[str]:
    """What keeps a server with these ``pg_settings`` from being a point-in-time recovery source, with fixes."""
    problems: list[str] = []
    if settings.get("wal_level") not in ("replica", "logical"):
        problems.append(
            f"wal_level is {settings.get('wal_level')!r}: archived WAL cannot rebuild a base backup."
            " Fix: wal_level = replica in postgresql.conf, then restart PostgreSQL"
        )
    if settings.get("archive_mode") not in ("on", "always"):
        problems.append(
            f"archive_mode is {settings.get('archive_mode')!r}: no WAL is archived."
            " Fix: archive_mode = on in postgresql.conf, then restart PostgreSQL"
        )
    command = settings.get("archive_command")
    if command is None:
        problems.append(
            f"cannot read archive_command as {user!r}."
            f" Fix: GRANT pg_read_all_settings TO {user}, or check as a superuser"
        )
    elif "wal-push" not in command:
        problems.append(
            f"archive_command is {command!r}, not the agent's wal-push: WAL does not reach the backup archive."
            " Fix: archive_command = 'backup-agent --config /etc/backup-agent/agent.yaml wal-push --target"
            " <target> %p', then SELECT pg_reload_conf() (see docs/pitr.md)"
        )
    if settings.get("archive_library"):
        problems.append(
            f"archive_library is {settings['archive_library']!r}: PostgreSQL archives through it and ignores"
            " archive_command. Fix: archive_library = '' in postgresql.conf, then SELECT pg_reload_conf()"
        )
    if int(settings.get("archive_timeout") or "0") <= 0:
        problems.append(
            "archive_timeout is 0: a quiet server keeps its last commits in an unfinished segment, so the WAL RPO"
            " cannot hold. Fix: archive_timeout = 60 in postgresql.conf, then SELECT pg_reload_conf()"
        )
    if settings.get("may_replicate") != "true":
        problems.append(
            f"role {user!r} may not replicate: pg_basebackup uses the replication protocol."
            f" Fix: ALTER ROLE {user} REPLICATION, and a pg_hba.conf line for replication connections of that role"
        )
    if int(settings.get("max_wal_senders") or "0") <= 0:
        problems.append(
            "max_wal_senders is 0: pg_basebackup needs a WAL sender. Fix: max_wal_senders = 3, then restart PostgreSQL"
        )
    if int(settings.get("tablespaces") or "0") > 0:
        problems.append(
            "the cluster has tablespaces besides pg_default: a streamed base backup cannot carry them."
            " Fix: move their tables to pg_default (ALTER TABLE ... SET TABLESPACE pg_default)"
        )
    return problems


class PostgresPhysicalEngine:
    name = "postgresql-physical"
    format = "pg_basebackup-tar"
    extension = "tar"

    def __init__(self, target: str, config: PostgresPhysicalConfig, resolve: Resolve, *, grace: float = 5.0) -> None:
        self.target = target
        self.config = config
        self._resolve = resolve
        self._grace = grace
        self._segment_size: int | None = None  # the server's, read when a backup starts

    # ---------------------------------------------------------------- connection plumbing

    def conninfo(self) -> str:
        return pg_conninfo(self.config)

    def _secrets(self) -> ClientSecrets:
        """The password (when configured) in a PGPASSFILE for one client run, resolved each time."""
        if self.config.password is None:
            return ClientSecrets(proc.child_env(drop=("PGPASSWORD",)), proc.Redactor(), proc.SecretFiles())
        password = self._resolve(self.config.password)
        redact = proc.Redactor()
        redact.add(password)
        return pgpass_secrets(password, proc.SecretFiles(), redact)

    def tool(self, name: str) -> str:
        """A client tool: from ``bin_dir`` when configured, else on PATH."""
        if self.config.bin_dir is not None:
            return str(self.config.bin_dir / name)
        return shutil.which(name) or name

    def _psql(self, sql: str, *, stage: str) -> str:
        argv = [self.tool("psql"), "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-F", "\t"]
        return run_client([*argv, "-d", self.conninfo(), "-f", "-"], self._secrets(), sql, tool="psql", stage=stage)

    def query(self, sql: str) -> str:
        """One query on the source server through this engine's own connection (its conninfo, the password
        by PGPASSFILE); tab-separated rows. The agent's heartbeat asks where the server's WAL stands."""
        return self._psql(sql, stage="check")

    def server_settings(self, *, stage: str = "check") -> dict[str, str]:
        rows = (line.partition("\t") for line in self._psql(_SETTINGS, stage=stage).splitlines())
        return {name: value for name, tab, value in rows if tab}

    def dump_argv(self) -> list[str]:
        return [
            self.config.pg_basebackup,
            "--dbname",
            self.conninfo(),
            "--no-password",
            "--pgdata=-",
            "--format=tar",
            "--wal-method=none",
            "--manifest-checksums=SHA256",
            "--checkpoint=fast",
        ]

    # ---------------------------------------------------------------- Engine protocol

    def versions(self) -> Versions:
        code, out, _err = proc.run_capture([self.config.pg_basebackup, "--version"], env=None, redact=proc.Redactor())
        tool = out.strip() if code == 0 else None
        server: str | None = None
        warnings: list[str] = []
        if self.config.data_directory is None:
            try:
                server = self._psql("SHOW server_version;", stage="check").strip() or None
            except EngineError as exc:
                warnings.append(f"cannot read the server version: {exc}")
        if too_old := client_too_old("pg_basebackup", tool, server, setting="pg_basebackup"):
            warnings.append(too_old)
        for warning in warnings:
            log.warning("%s: %s", self.target, warning)
        return Versions(tool_version=tool, server_version=server, warnings=tuple(warnings))

    def check(self) -> list[str]:
        if self.config.data_directory is not None:
            return pg_recovery.destination_problems(self.config)
        if shutil.which(self.config.pg_basebackup) is None:
            return [
                f"{self.config.pg_basebackup} not found. Fix: install the PostgreSQL client"
                " (e.g. postgresql-client-15) or set pg_basebackup in the target config"
            ]
        if shutil.which(self.tool("psql")) is None:
            return [f"{self.tool('psql')} not found. Fix: install the PostgreSQL client or set bin_dir"]
        c = self.config
        try:
            settings = self.server_settings()
        except EngineError as exc:
            return [f"cannot connect to {c.host}:{c.port}/{c.database}: {exc}"]
        return [*settings_problems(settings, c.user), *self.versions().warnings]

    def start_dump(self) -> ProcessDump:
        try:
            self._segment_size = int(self.server_settings(stage="dump").get("wal_segment_size") or "0") or None
        except (EngineError, ValueError) as exc:
            log.warning("%s: cannot read wal_segment_size (deduced from backup_label instead): %s", self.target, exc)
            self._segment_size = None
        secrets = self._secrets()
        return ProcessDump(
            self.dump_argv(), env=secrets.env, redact=secrets.redact, cleanup=secrets.files.cleanup, grace=self._grace
        )

    def validator(self) -> BaseBackupValidator:
        return BaseBackupValidator(wal_segment_size=self._segment_size)

    def restore(self, stream: BinaryIO, *, mode: RestoreMode) -> RestoreReport:
        raise EngineError(
            f"{self.target} holds physical base backups: a base backup is consistent only with the WAL archived"
            " after it, so it is restored with its WAL (restore_with_wal). Fix: request the restore as a"
            " Restore Requested event (backupctl restore), so the coordinator lists the WAL to replay",
            stage="restore",
        )

    def restore_with_wal(self, stream: BinaryIO, *, mode: RestoreMode, recovery: Recovery) -> RestoreReport:
        """Unpack the base backup into ``data_directory``, replay WAL to ``recovery.target_time``, promote
        and verify the new cluster (see ``pg_recovery.restore``)."""
        if mode == "in-place":
            raise EngineError(
                f"an in-place restore of {self.target} is refused: it would replace a running cluster's data"
                " directory. Fix: restore to a clone destination and switch over; in-place physical restores are"
                " not supported yet",
                stage="restore",
            )
        return pg_recovery.restore(self.config, stream, recovery, target=self.target)

    def drop_restored(self) -> str:
        """Stop the restored server (immediate) and remove its data directory. Destroys its data."""
        directory = self.config.data_directory
        if directory is None:
            raise EngineError(
                f"{self.target} has no data_directory: there is nothing restored to drop", stage="cleanup"
            )
        done = pg_server.stop_server(self.config, directory, mode="immediate")
        if directory.exists():
            shutil.rmtree(directory)
            done.append(f"removed {directory}")
        return "; ".join(done) or f"{directory} did not exist: nothing to drop"
