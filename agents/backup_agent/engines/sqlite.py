"""SQLite: a consistent online copy through the backup API, never a raw file copy.

Dump: in a thread, ``sqlite3`` opens the live database (``mode=rw``, so a missing file is an error
rather than a new empty database), copies it with ``Connection.backup`` in a single step — one read
transaction, hence one consistent snapshot even while the application keeps writing (in WAL mode the
writers are not blocked; in rollback-journal mode they wait for the copy) — into a 0600 temp file in
``temp_dir`` (default: the system temp dir), runs ``PRAGMA integrity_check`` on the copy, streams it,
and deletes it. A failed integrity check fails the dump.

Restore: the stream is written to a new temp file next to the destination, validated (header, page
size, length), ``PRAGMA integrity_check``-ed, fsynced, then atomically ``os.replace``-d over the
destination; the destination's ``-wal``, ``-shm`` and ``-journal`` files are removed right after (a
stale WAL or hot journal would otherwise be applied to the new file and corrupt it), and the
directory is fsynced. Before the swap the old database is checkpointed (``wal_checkpoint(TRUNCATE)``)
so its WAL is empty.

Limitation: processes that hold the database open keep reading the old (replaced) inode and may
write to the removed WAL; stop the application (or make it reopen its connections) around an
in-place restore. ``clone``/``drill`` restores refuse an existing non-empty destination file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.request import pathname2url

from backup_agent import proc
from backup_agent.engines.base import EngineError, InvalidDumpError, RestoreMode, RestoreReport, Versions
from backup_agent.engines.config import Resolve, SQLiteConfig
from backup_agent.engines.running import ThreadDump
from backup_agent.engines.validators import Deferred, SQLiteValidator

_SIDE_FILES = ("-wal", "-shm", "-journal")


def _connect_existing(path: Path, timeout: float = 30.0, *, read_only: bool = False) -> sqlite3.Connection:
    """Open an existing database (never create one); ``read_only`` for agents without write access."""
    mode = "ro" if read_only else "rw"
    return sqlite3.connect(f"file:{pathname2url(str(path))}?mode={mode}", uri=True, timeout=timeout)


def _connect_source(path: Path) -> sqlite3.Connection:
    try:
        return _connect_existing(path)
    except sqlite3.OperationalError:
        return _connect_existing(path, read_only=True)  # a WAL database then needs an existing -shm


def integrity_facts(path: Path) -> dict[str, object]:
    """Run ``PRAGMA integrity_check`` and count rows per table; raises EngineError when not ok."""
    conn = _connect_existing(path)
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        if result != ["ok"]:
            raise EngineError(f"integrity_check failed: {'; '.join(map(str, result[:5]))}", stage="verify")
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        rows = {
            name: int(conn.execute(f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0])  # noqa: S608 - quoted identifier from sqlite_master
            for name in names
        }
    finally:
        conn.close()
    return {"integrity_check": "ok", "tables": len(names), "rows": rows, "total_rows": sum(rows.values())}


def _remove_side_files(path: Path) -> None:
    for suffix in _SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _remove_database_files(path: Path) -> None:
    """Remove a database file and its -wal/-shm/-journal, whichever of them exist."""
    path.unlink(missing_ok=True)
    _remove_side_files(path)


class SQLiteEngine:
    name = "sqlite"
    format = "sqlite-db"
    extension = "sqlite"

    def __init__(self, target: str, config: SQLiteConfig, resolve: Resolve | None = None) -> None:
        self.target = target
        self.config = config

    def versions(self) -> Versions:
        return Versions(tool_version=f"sqlite3 {sqlite3.sqlite_version} (python backup API)", server_version=None)

    def check(self) -> list[str]:
        path = self.config.path
        if not path.is_file():
            return [f"sqlite database {str(path)!r} does not exist. Fix: correct the path in the target config"]
        try:
            conn = _connect_source(path)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return [f"cannot read sqlite database {str(path)!r}: {exc}"]
        temp_dir = self.config.temp_dir or Path(tempfile.gettempdir())
        if not os.access(temp_dir, os.W_OK):
            return [f"temp_dir {str(temp_dir)!r} is not writable"]
        return []

    def _produce(self, write: Callable[[bytes], None]) -> None:
        source = self.config.path
        if not source.is_file():
            raise FileNotFoundError(f"sqlite database {str(source)!r} does not exist")
        temp_dir = str(self.config.temp_dir) if self.config.temp_dir else None
        fd, tmp = tempfile.mkstemp(prefix=".backup-agent-", suffix=".sqlite", dir=temp_dir)  # 0600
        os.close(fd)
        try:
            src = _connect_source(source)
            try:
                dst = sqlite3.connect(tmp)
                try:
                    src.backup(dst)  # pages=-1: the whole database in one step, one consistent snapshot
                finally:
                    dst.close()
            finally:
                src.close()
            integrity_facts(Path(tmp))
            with open(tmp, "rb") as handle:
                while chunk := handle.read(proc.CHUNK):
                    write(chunk)
        finally:
            _remove_database_files(Path(tmp))

    def start_dump(self) -> ThreadDump:
        return ThreadDump(self._produce, redact=proc.Redactor(), name=f"sqlite-dump-{self.target}")

    def validator(self) -> SQLiteValidator:
        return SQLiteValidator()

    def drop_restored(self) -> str:
        """Remove this target's database file and its side files: cleanup of a drill/clone scratch copy."""
        _remove_database_files(self.config.path)
        return f"removed {self.config.path}"

    def restore(self, stream: BinaryIO, *, mode: RestoreMode) -> RestoreReport:
        dest = self.config.path
        if mode in ("clone", "drill") and dest.exists() and dest.stat().st_size > 0:
            raise EngineError(
                f"clone destination {str(dest)!r} already exists; refusing to overwrite it."
                " Fix: choose a new path or restore in-place",
                stage="restore",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.restore-", dir=dest.parent)
        tmp = Path(tmp_name)
        validator = Deferred(SQLiteValidator())
        try:
            with os.fdopen(fd, "wb") as handle:
                while chunk := stream.read(proc.CHUNK):
                    validator.feed(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                validator.finish()
            except InvalidDumpError as exc:
                raise EngineError(f"restore of {str(dest)!r} refused: {exc}", stage="restore") from exc
            facts = integrity_facts(tmp)
            _remove_side_files(tmp)
            if dest.exists():
                st = dest.stat()
                os.chmod(tmp, st.st_mode & 0o7777)
                with contextlib.suppress(PermissionError):
                    os.chown(tmp, st.st_uid, st.st_gid)
                with contextlib.suppress(sqlite3.Error):
                    conn = _connect_existing(dest, timeout=10)
                    try:
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                    finally:
                        conn.close()
            os.replace(tmp, dest)
            _remove_side_files(dest)
            proc.fsync_dir(dest.parent)
        except BaseException:
            _remove_database_files(tmp)
            raise
        facts["bytes"] = validator.finish()["bytes"]
        return RestoreReport(destination=str(dest), verification=facts)
