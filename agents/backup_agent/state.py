"""The agent's local record of completed jobs (state_dir/completed-jobs.jsonl).

Why a local file and not a HEAD of the object: every attempt gets its own run id and therefore its
own key, so "did this job already succeed" cannot be answered by one HEAD, and listing would need
read access to the prefix that a write-only agent role does not have. The file is appended (one JSON
line per event, O_APPEND + fsync) after the upload completed and again once ``Backup Succeeded`` was
emitted, so a redelivered job is acknowledged without a second backup and a lost event is re-sent.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FILE_NAME = "completed-jobs.jsonl"
KEEP = timedelta(days=30)


class StateError(Exception):
    """The state directory is not usable."""


class CompletedJobs:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._entries: dict[str, dict[str, Any]] = {}
        try:
            Path(state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(f"state_dir {state_dir} cannot be created: {exc.strerror}") from exc
        self._compact()

    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._entries, self._mtime = {}, None
            return
        if self._mtime == stat.st_mtime_ns:
            return
        entries: dict[str, dict[str, Any]] = {}
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue  # a torn last line after a crash: ignore it
                if isinstance(item, dict) and "job_id" in item:
                    merged = entries.setdefault(item["job_id"], {})
                    merged.update(item)
        self._entries, self._mtime = entries, stat.st_mtime_ns

    def _compact(self) -> None:
        with self._lock:
            self._load()
            cutoff = datetime.now(UTC) - KEEP
            keep = {k: v for k, v in self._entries.items() if _when(v) >= cutoff}
            if len(keep) == len(self._entries):
                return
            tmp = self.path.with_suffix(".tmp")
            with tmp.open("w", encoding="utf-8") as handle:
                for item in keep.values():
                    handle.write(json.dumps(item, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
            self._entries, self._mtime = keep, None

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._load()
            return self._entries.get(job_id)

    def unreported(self) -> list[tuple[str, dict[str, Any]]]:
        """Stored backups whose ``Backup Succeeded`` was recorded but never confirmed on the bus, oldest first."""
        with self._lock:
            self._load()
            owed = [(job_id, entry) for job_id, entry in self._entries.items() if "event" in entry]
        return sorted(
            ((job_id, entry) for job_id, entry in owed if entry.get("emitted") is False), key=lambda p: _when(p[1])
        )

    def record(self, job_id: str, **fields: Any) -> None:
        item = {"job_id": job_id, "recorded_at": datetime.now(UTC).isoformat(), **fields}
        line = (json.dumps(item, sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._entries.setdefault(job_id, {}).update(item)


def _when(item: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(item.get("recorded_at")))
    except ValueError:
        return datetime.now(UTC)
