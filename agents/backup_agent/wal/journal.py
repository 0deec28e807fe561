"""The WAL journal: what this host archived, or started to, per target (``state_dir/wal/<target>/``).

Why a journal and not a HEAD of the object: the agent is write-only (no s3:GetObject), so after a
crash it cannot ask the archive what an earlier attempt stored. Every push writes its entry *before*
the upload, so a retry that finds the name already taken (HTTP 412 from the conditional write) can
tell "an earlier attempt of mine stored exactly these bytes" (success) from "the archive holds
something else under this name" (an error that stops archiving, as it must).

Layout, one small JSON file per WAL file, each written to a temporary file, fsync'd and renamed
(and the directory fsync'd), so a kill at any point leaves the old entry or the new one, never half:

- ``journal/<file>.json``: ``{"file", "state": "pending"|"stored"|"refused", "raw_sha256", "sha256",
  "bytes_in", "bytes_stored", "key", "compression", "recorded_at"}`` — ``raw_sha256`` of the WAL file
  as PostgreSQL wrote it, ``sha256`` and ``bytes_stored`` of the compressed object; ``refused``: the
  name was taken by an object this host never stored (every retry refuses too);
- ``owed/<file>.json``: the ``WAL Archived`` event of a stored file not yet confirmed on the bus;
  removed once PutEvents confirmed it (re-sent by the next ``wal-push`` and by ``backup-agent run``).

Stored entries are pruned after ``KEEP`` (PostgreSQL asks for a file again only until one push
succeeded; a week covers any crash-and-retry window).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from backup_contracts.wal import is_wal_file

KEEP = timedelta(days=7)
PRUNE_EVERY = 64  # segments: pruning scans the journal once per ~1 GiB of WAL
EntryState = Literal["pending", "stored", "refused"]


class JournalError(Exception):
    """The journal directory cannot be created or written: a push must not go ahead without it."""


@dataclass(frozen=True)
class Entry:
    file: str
    state: EntryState
    raw_sha256: str
    sha256: str
    bytes_in: int
    bytes_stored: int
    key: str
    compression: str
    recorded_at: str = ""

    def stored(self) -> Entry:
        return Entry(**{**asdict(self), "state": "stored", "recorded_at": _now()})


def _now() -> str:
    return datetime.now(UTC).isoformat()


class WalJournal:
    """One target's journal; safe for the threads of one push and for concurrent processes (every
    write is an atomic rename of a file of its own)."""

    def __init__(self, state_dir: Path, target: str) -> None:
        self.root = Path(state_dir) / "wal" / target
        self.entries = self.root / "journal"
        self.owed_dir = self.root / "owed"
        try:
            for directory in (self.entries, self.owed_dir):
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise JournalError(
                f"the WAL journal {self.root} cannot be created: {exc.strerror}. Fix: make state_dir writable by"
                " the user PostgreSQL runs archive_command as (usually postgres)"
            ) from exc
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ entries
    def get(self, name: str) -> Entry | None:
        data = _read(self.entries / f"{_checked(name)}.json")
        if data is None:
            return None
        try:
            return Entry(**{k: data[k] for k in Entry.__dataclass_fields__ if k in data})
        except TypeError:
            return None  # an entry of an unknown shape counts as none (the conditional write still protects)

    def record(self, entry: Entry) -> Entry:
        stamped = Entry(**{**asdict(entry), "recorded_at": entry.recorded_at or _now()})
        self._write(self.entries / f"{_checked(entry.file)}.json", asdict(stamped))
        return stamped

    # ------------------------------------------------------------------ owed events
    def owe(self, name: str, event: dict[str, Any]) -> None:
        self._write(self.owed_dir / f"{_checked(name)}.json", event)

    def paid(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.owed_dir / f"{_checked(name)}.json").unlink()

    def is_owed(self, name: str) -> bool:
        return (self.owed_dir / f"{_checked(name)}.json").exists()

    def owed(self, limit: int = 1000) -> list[tuple[str, dict[str, Any]]]:
        """Events still owed, oldest WAL file first (names sort in WAL order within a timeline)."""
        found: list[tuple[str, dict[str, Any]]] = []
        for path in sorted(self.owed_dir.glob("*.json"))[:limit]:
            data = _read(path)
            if data is not None:
                found.append((path.stem, data))
        return found

    # ------------------------------------------------------------------ upkeep
    def prune(self, keep: timedelta = KEEP) -> int:
        """Remove stored entries older than ``keep`` whose event is not owed; returns how many."""
        cutoff = time.time() - keep.total_seconds()
        removed = 0
        for path in self.entries.glob("*.json"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff and not self.is_owed(path.stem):
                    data = _read(path)
                    if data is not None and data.get("state") == "stored":
                        path.unlink()
                        removed += 1
        return removed

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        body = (json.dumps(data, sort_keys=True, default=str) + "\n").encode()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise JournalError(
                f"cannot write the WAL journal entry {path}: {exc.strerror}. Fix: free disk space or make"
                f" {self.root} writable by the user archive_command runs as"
            ) from exc

    def temporary_files(self) -> Iterator[Path]:
        """Leftovers of writes a kill interrupted (harmless; removed by ``clean``)."""
        for directory in (self.entries, self.owed_dir):
            yield from directory.glob(".*.tmp")

    def clean(self, older_than_s: float = 3600) -> None:
        cutoff = time.time() - older_than_s
        for path in self.temporary_files():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


def _checked(name: str) -> str:
    if not is_wal_file(name):
        raise ValueError(f"{name!r} is not a WAL file name")
    return name


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
