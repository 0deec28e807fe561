"""The ``backup_manifest`` PostgreSQL writes into a base backup, read line by line as it streams.

PostgreSQL (13+) writes the manifest one entry per line::

    { "PostgreSQL-Backup-Manifest-Version": 1,
    "Files": [
    { "Path": "backup_label", "Size": 225, "Last-Modified": "...", "Checksum-Algorithm": "SHA256", "Checksum": "..." },
    ...
    ],
    "WAL-Ranges": [
    { "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
    ],
    "Manifest-Checksum": "<SHA-256 of every byte before this line>"}

(version 2, PostgreSQL 17, adds a ``"System-Identifier": N,`` line after the first). ``ManifestReader``
takes the manifest's bytes in pieces, keeps one line at a time, hashes what precedes the checksum
line, and hands each file entry to a callback, so a manifest of a million files needs no more memory
than one line. Any line out of this shape is refused: this is the writer's fixed format, not JSON in
general.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from backup_agent.engines.base import InvalidDumpError

LINE_MAX = 64 * 1024
_FIRST = re.compile(rb'^\{ "PostgreSQL-Backup-Manifest-Version": ([0-9]+),$')
_SYSTEM_ID = re.compile(rb'^"System-Identifier": ([0-9]+),$')
_CHECKSUM = re.compile(rb'^"Manifest-Checksum": "([0-9a-f]{64})"\}$')
_VERSIONS = (1, 2)


@dataclass(frozen=True)
class ManifestFile:
    path: str
    size: int
    algorithm: str
    checksum: str
    last_modified: str


@dataclass(frozen=True)
class WalRange:
    timeline: int
    start_lsn: str
    end_lsn: str


def _entry(line: bytes, number: int) -> dict[str, object]:
    try:
        value = json.loads(line[:-1] if line.endswith(b",") else line)
    except ValueError as exc:
        raise InvalidDumpError(f"backup_manifest line {number} is not a JSON object") from exc
    if not isinstance(value, dict):
        raise InvalidDumpError(f"backup_manifest line {number} is not a JSON object")
    return value


def _file(entry: dict[str, object], number: int) -> ManifestFile:
    if "Encoded-Path" in entry:  # a name that is not UTF-8: hex of its bytes
        raw = bytes.fromhex(str(entry["Encoded-Path"]))
        path = raw.decode("utf-8", "surrogateescape")
    else:
        path = entry.get("Path")  # type: ignore[assignment]
    size = entry.get("Size")
    if not isinstance(path, str) or not isinstance(size, int) or size < 0:
        raise InvalidDumpError(f"backup_manifest line {number}: a file entry without a path and a size")
    return ManifestFile(
        path=path,
        size=size,
        algorithm=str(entry.get("Checksum-Algorithm", "NONE")),
        checksum=str(entry.get("Checksum", "")),
        last_modified=str(entry.get("Last-Modified", "")),
    )


def _range(entry: dict[str, object], number: int) -> WalRange:
    timeline, start, end = entry.get("Timeline"), entry.get("Start-LSN"), entry.get("End-LSN")
    if not isinstance(timeline, int) or not isinstance(start, str) or not isinstance(end, str):
        raise InvalidDumpError(f"backup_manifest line {number}: a WAL range without Timeline, Start-LSN, End-LSN")
    return WalRange(timeline, start, end)


class ManifestReader:
    """Reads one streamed ``backup_manifest``; ``on_file`` sees each file entry as its line arrives."""

    def __init__(self, on_file: Callable[[ManifestFile, int], None]) -> None:
        self._on_file = on_file
        self._line = bytearray()
        self._number = 0
        self._section = "start"  # start, head, files, between, ranges, after, done
        self._hash = hashlib.sha256()
        self.version: int | None = None
        self.system_identifier: int | None = None
        self.wal_ranges: list[WalRange] = []
        self.files = 0

    def feed(self, data: bytes | memoryview) -> None:
        piece = bytes(data)
        pos = 0
        while (newline := piece.find(b"\n", pos)) >= 0:
            self._line += piece[pos:newline]
            pos = newline + 1
            line = bytes(self._line)
            self._line.clear()
            self._take(line, newline=True)
        self._line += piece[pos:]
        if len(self._line) > LINE_MAX:
            raise InvalidDumpError(f"backup_manifest line {self._number + 1} is longer than {LINE_MAX} bytes")

    def _take(self, line: bytes, *, newline: bool) -> None:
        self._number += 1
        number = self._number
        checksum = _CHECKSUM.match(line)
        if self._section == "done":
            raise InvalidDumpError("backup_manifest has data after its Manifest-Checksum")
        if checksum is None:
            self._hash.update(line + b"\n" if newline else line)
        if self._section == "start":
            first = _FIRST.match(line)
            if first is None or int(first.group(1)) not in _VERSIONS:
                raise InvalidDumpError("backup_manifest does not start with a known PostgreSQL-Backup-Manifest-Version")
            self.version = int(first.group(1))
            self._section = "head"
        elif self._section == "head" and (system := _SYSTEM_ID.match(line)):
            self.system_identifier = int(system.group(1))
        elif self._section == "head" and line == b'"Files": [':
            self._section = "files"
        elif self._section in ("files", "ranges") and line.startswith(b"{"):
            entry = _entry(line, number)
            if self._section == "files":
                self.files += 1
                self._on_file(_file(entry, number), number)
            else:
                self.wal_ranges.append(_range(entry, number))
        elif self._section in ("files", "ranges") and line == b"],":
            self._section = "between" if self._section == "files" else "after"
        elif self._section == "between" and line == b'"WAL-Ranges": [':
            self._section = "ranges"
        elif self._section in ("after", "between") and checksum is not None:
            if checksum.group(1).decode() != self._hash.hexdigest():
                raise InvalidDumpError(
                    "backup_manifest's Manifest-Checksum does not match its contents: it was altered"
                )
            self._section = "done"
        else:
            raise InvalidDumpError(f"backup_manifest line {number} is not where a PostgreSQL manifest has it")

    def finish(self) -> None:
        """The manifest's member ended: its last line taken, its checksum must have been verified."""
        if self._line:
            line = bytes(self._line)
            self._line.clear()
            self._take(line, newline=False)
        if self._section != "done":
            raise InvalidDumpError("backup_manifest ends before its Manifest-Checksum: truncated")
        if not self.wal_ranges:
            raise InvalidDumpError("backup_manifest lists no WAL range: the backup cannot be made consistent")
