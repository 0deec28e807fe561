"""A point-in-time restore of a base backup: unpack, configure recovery, replay WAL, promote, verify.

``restore`` turns a base backup stream and a ``Recovery`` into a running, promoted cluster in the
destination's ``data_directory``:

1. the directory must be absent or empty; the backup is unpacked and checked (``pg_extract``), and a
   failure at any later step stops the server and removes what was unpacked;
2. ``recovery.signal``, and a block appended to ``postgresql.auto.conf`` (later lines win):
   ``restore_command``, the stop (``recovery_target_time`` in UTC with microseconds, ``recovery_target =
   'immediate'``, or none: the end of the WAL) with ``recovery_target_action = 'pause'``, the
   destination's ``port`` and ``listen_addresses``, the Unix socket in the data directory itself
   (private: 0700), ``archive_mode = off`` (a clone must never push WAL into its source's archive),
   ``hot_standby = on``, no synchronous standbys, no primary to follow, and the ``max_connections``-like
   settings the backup's ``pg_control`` recorded (a hot standby needs at least its source's);
3. while it recovers, ``pg_hba.conf`` lets only local socket connections in (trust: only the server's
   OS user and root can reach the 0700 directory); the source's own file comes back once verified;
4. the server starts (``pg_server.Server``: ``pg_ctl`` as ``server_user``) and is watched until recovery
   pauses at the target, or ends, or the server dies: then the FATAL line of its log is the error (a
   target before the backup's consistent point, an archive that ends before the target...); a target
   before the base backup began is refused before the server starts;
5. ``reached_at`` is the commit time of the last transaction replayed; recovery is resumed, which ends
   it and promotes the server; the restore waits until it accepts writes, checks the system identifier
   against the backup's, and reports timeline, reached time, databases, port and data directory.

Afterwards the recovery-only lines are removed again (restore_command, targets, logging_collector),
and the configuration reloaded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from backup_agent import proc
from backup_agent.engines import pg_extract
from backup_agent.engines.base import EngineError, Recovery, RestoreReport
from backup_agent.engines.pg_extract import ServerUser
from backup_agent.engines.pg_physical_config import PostgresPhysicalConfig
from backup_agent.engines.pg_server import Server, find_bin_dir
from backup_agent.engines.postgresql import major_version

BEGIN, END = "# backup-agent restore: begin", "# backup-agent restore: end"
RECOVERY_ONLY = (
    "restore_command",
    "recovery_target",
    "recovery_target_name",
    "recovery_target_xid",
    "recovery_target_lsn",
    "recovery_target_time",
    "recovery_target_action",
    "logging_collector",
)
_HBA_DURING_RECOVERY = (
    "# backup-agent: local socket only while the restore recovers and verifies\nlocal all all trust\n"
)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def target_text(target: datetime) -> str:
    """``recovery_target_time`` as PostgreSQL reads it unambiguously: UTC with microseconds."""
    if target.tzinfo is None:
        raise EngineError(
            "the recovery target time has no time zone. Fix: give it in UTC, e.g. 2026-12-03T09:41:07Z", stage="config"
        )
    return target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def destination_problems(config: PostgresPhysicalConfig) -> list[str]:
    """What keeps a clone/drill destination from receiving a restore, each with its fix."""
    problems: list[str] = []
    try:
        pg_extract.server_user(config.server_user)
        bin_dir = find_bin_dir(config, None)
    except EngineError as exc:
        return [str(exc)]
    problems += [
        f"{bin_dir / tool} not found. Fix: install the PostgreSQL server or set bin_dir"
        for tool in ("pg_ctl", "postgres", "psql")
        if not (bin_dir / tool).exists()
    ]
    directory = config.data_directory
    if directory is not None and directory.is_dir() and any(directory.iterdir()):
        problems.append(
            f"data_directory {directory} is not empty: a restore would be refused. Fix: remove the old cluster"
            " there or choose a new data_directory"
        )
    return problems


def _recovery_state(server: Server) -> str | None:
    code, out, _err = server.sql(
        "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 'ended' ELSE pg_get_wal_replay_pause_state() END;"
    )
    return out if code == 0 and out in ("ended", "paused") else None


def _writable(server: Server) -> str | None:
    code, _out, _err = server.sql("BEGIN READ WRITE; SELECT pg_current_xact_id(); ROLLBACK;")
    return "writable" if code == 0 else None


def recovery_settings(config: PostgresPhysicalConfig, directory: Path, recovery: Recovery) -> dict[str, str]:
    """The lines a restore appends to postgresql.auto.conf, values quoted as the file wants them."""
    if any(char in recovery.restore_command for char in "\n\r\0"):
        raise EngineError("restore_command must be one line (no newline or NUL)", stage="config")
    # Each recovery_target* assignment refuses a different target already set, even when clearing it, so
    # the one target this restore sets comes last, after the others are cleared.
    targets = {f"recovery_target{kind}": "''" for kind in ("", "_name", "_xid", "_lsn", "_time")}
    if recovery.stop == "immediate":
        targets.pop("recovery_target")
        targets["recovery_target"] = "'immediate'"
    elif recovery.stop == "time" and recovery.target_time is not None:
        targets["recovery_target_time"] = _quote(target_text(recovery.target_time))
    return {
        "restore_command": _quote(recovery.restore_command),
        **targets,
        "recovery_target_action": "'pause'",
        "logging_collector": "off",  # FATAL lines go to our log file, where the restore reads them
        "port": str(config.port),
        "listen_addresses": _quote(config.listen_addresses),
        "unix_socket_directories": _quote(str(directory)),
        "archive_mode": "off",
        "hot_standby": "on",
        "synchronous_standby_names": "''",
        "primary_conninfo": "''",
        "primary_slot_name": "''",
    }


def write_block(directory: Path, settings: dict[str, str], owner: ServerUser) -> None:
    """Replace (or append) the restore's block at the end of postgresql.auto.conf."""
    auto = directory / "postgresql.auto.conf"
    text = auto.read_text(encoding="utf-8") if auto.exists() else ""
    if BEGIN in text:
        text = text[: text.index(BEGIN)]
    if text and not text.endswith("\n"):
        text += "\n"
    lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
    _write(auto, f"{text}{BEGIN}\n{lines}{END}\n", owner)


def _write(path: Path, text: str, owner: ServerUser) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    owner.own(path)


def _configure(directory: Path, settings: dict[str, str], owner: ServerUser) -> tuple[str, list[str]]:
    """recovery.signal, the restore's settings, local-only access; the source's pg_hba.conf to put back, and notes."""
    notes: list[str] = []
    for name in ("postgresql.conf", "pg_ident.conf"):
        if not (directory / name).exists():  # Debian keeps them in /etc/postgresql: not in the backup
            _write(directory / name, "", owner)
            notes.append(f"the backup has no {name} (the source keeps it outside its data directory): an empty one")
    hba = directory / "pg_hba.conf"
    original_hba = hba.read_text(encoding="utf-8") if hba.exists() else None
    if original_hba is None:
        notes.append("the backup has no pg_hba.conf: local connections are allowed by peer authentication")
        original_hba = "local all all peer\n"
    _write(hba, _HBA_DURING_RECOVERY, owner)
    _write(directory / "recovery.signal", "", owner)
    write_block(directory, settings, owner)
    return original_hba, notes


def restore(config: PostgresPhysicalConfig, stream: BinaryIO, recovery: Recovery, *, target: str) -> RestoreReport:
    """Restore a base backup plus WAL into ``config.data_directory`` (see the module docstring)."""
    directory = config.data_directory
    if directory is None:
        raise EngineError(
            f"{target} has no data_directory: a physical restore creates a new cluster there."
            " Fix: set data_directory (absent or empty) and port in the destination's config",
            stage="config",
        )
    if recovery.target_time is not None:
        target_text(recovery.target_time)  # a naive time is refused before anything is written
    owner = pg_extract.server_user(config.server_user)
    created = pg_extract.prepare(directory, owner)
    server: Server | None = None
    try:
        facts = pg_extract.unpack(stream, directory, owner)
        _target_after_backup(recovery, facts)
        bin_dir = find_bin_dir(config, major_version(str(facts.get("pg_version"))))
        _same_major(bin_dir, str(facts.get("pg_version")))
        server = Server(config, directory, bin_dir, owner)
        # a hot standby needs at least the source's max_connections & co: those pg_control recorded
        settings = {**recovery_settings(config, directory, recovery), **server.recorded_settings()}
        hba, notes = _configure(directory, settings, owner)
        server.start()
        verification = _recover_and_verify(server, recovery, facts)
        _finish(server, hba, settings)
    except BaseException as exc:
        if server is not None and server.started:
            server.stop("immediate")
        pg_extract.empty(directory, created=created)
        if isinstance(exc, EngineError):
            exc.args = (f"{exc.args[0]}; {_left_behind(directory, created=created)}",)
        raise
    if verification["reached_at"] is None:
        notes.append("no transaction was replayed: the cluster is as the base backup left it at its end")
    verification["notes"] = notes
    return RestoreReport(destination=f"postgresql://127.0.0.1:{config.port} ({directory})", verification=verification)


def _left_behind(directory: Path, *, created: bool) -> str:
    """What a failed restore left in its data directory, in the words the restore executor reads."""
    clean = not directory.exists() or (not created and not any(directory.iterdir()))
    if clean:
        undone = "removed again" if created else "emptied again"
        return f"the data directory {directory} was {undone}: nothing was created"
    return f"the data directory {directory} could not be emptied again: remove it before the next restore"


def _target_after_backup(recovery: Recovery, facts: dict[str, object]) -> None:
    """Refuse a target before the base backup began: the WAL replayed starts there, what came before is
    already in the backup's files, so recovery could only stop later than asked."""
    began = datetime.fromisoformat(str(facts["start_time"]))
    if recovery.target_time is not None and recovery.target_time < began:
        raise EngineError(
            f"the recovery target {recovery.target_time.astimezone(UTC).isoformat()} is before the base backup began"
            f" ({began.isoformat()}): recovery cannot stop before it. Fix: restore from an earlier base backup, one"
            " that ended before that time",
            stage="restore",
        )


def _same_major(bin_dir: Path, pg_version: str) -> None:
    code, out, _err = proc.run_capture([str(bin_dir / "postgres"), "--version"], env=None, redact=proc.Redactor())
    have = major_version(out) if code == 0 else None
    if have is None or str(have) != pg_version.split(".", maxsplit=1)[0]:
        raise EngineError(
            f"the base backup is PostgreSQL {pg_version}, the server binaries in {bin_dir} are"
            f" {out.strip() or 'missing'}. Fix: install postgresql-{pg_version} and set bin_dir to its bin directory",
            stage="config",
        )


def _recover_and_verify(server: Server, recovery: Recovery, facts: dict[str, object]) -> dict[str, object]:
    timeout = server.config.recovery_timeout_s
    state = server.wait(lambda: _recovery_state(server), what="recovery", timeout=timeout)
    reached = server.query(
        "SELECT to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"');"
    )
    if state == "paused":
        server.query("SELECT pg_wal_replay_resume();")  # recovery ends, the server promotes itself
    server.wait(lambda: _writable(server), what="promotion", timeout=timeout)
    system_identifier = server.query("SELECT system_identifier FROM pg_control_system();")
    if system_identifier != facts.get("system_identifier"):
        raise EngineError(
            f"the restored cluster's system identifier {system_identifier} is not the base backup's"
            f" {facts.get('system_identifier')}",
            stage="verify",
        )
    reached_at = reached or None
    if reached_at and recovery.target_time and datetime.fromisoformat(reached_at) > recovery.target_time:
        raise EngineError(f"recovery replayed past the target: {reached_at} > {recovery.target_time}", stage="verify")
    timeline = int(server.query("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8);"), 16)
    databases = server.query("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1;").splitlines()
    return {
        "system_identifier": system_identifier,
        "timeline": timeline,
        "reached_at": reached_at,
        "recovery_target_time": recovery.target_time.astimezone(UTC).isoformat() if recovery.target_time else None,
        "recovery": "paused at the target, then promoted" if state == "paused" else "replayed all archived WAL",
        "databases": databases,
        "port": server.config.port,
        "data_directory": str(server.directory),
        "pg_version": facts.get("pg_version"),
        "base_backup_end_lsn": facts.get("end_lsn"),
        "files": facts.get("files"),
        "bytes": facts.get("bytes"),  # the base backup as unpacked: the manifest's bytes
    }


def _finish(server: Server, hba: str, settings: dict[str, str]) -> None:
    """Put the source's pg_hba.conf back and drop the recovery-only settings; reload."""
    write_block(server.directory, {k: v for k, v in settings.items() if k not in RECOVERY_ONLY}, server.owner)
    _write(server.directory / "pg_hba.conf", hba, server.owner)
    server.query("SELECT pg_reload_conf();")
