"""A ``pg_basebackup -Ft -D -`` stream, checked as it passes: every file against the server's own manifest.

The stream is one ustar archive (PostgreSQL's own tar writer: no pax headers, names under 100 bytes)
holding ``backup_label``, ``tablespace_map``, the cluster's files and, near the end, ``backup_manifest``.
While it streams, each regular member is hashed (SHA-256) and sized; only its path, size and digest
are kept. ``backup_manifest`` is read line by line (``pg_manifest.ManifestReader``): its own checksum
is verified, and each entry is matched against its member whichever comes first. The backup is good
only when every listed file arrived with its size and SHA-256, no unlisted file did, the archive ended
with its end-of-archive marker, and ``backup_label``, ``PG_VERSION`` and ``global/pg_control`` were there.

Refused as they appear: a bad header checksum, an absolute path or ``..``, and any member other than a
regular file or a directory (links mean tablespaces, which a streamed base backup does not support).

An optional ``TarSink`` sees every directory and file's bytes as they pass: the physical restore
extracts through it, so the same checks guard what lands on disk. The facts ``finish`` returns
(``FACT_NAMES``) go into the backup's manifest and come back to a restore as its ``manifest_facts``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Protocol

from backup_agent.engines.base import Chunk, InvalidDumpError
from backup_agent.engines.validators.pg_manifest import ManifestFile, ManifestReader
from backup_agent.engines.validators.tar import _checksum_ok, _tar_number
from backup_contracts.wal import DEFAULT_SEGMENT_SIZE, WalNameError, format_lsn, parse_lsn, segment_of

FACT_NAMES = (
    "system_identifier",
    "timeline",
    "start_lsn",
    "end_lsn",
    "start_file",
    "end_file",
    "wal_segment_size",
    "start_time",
    "pg_version",
    "files",
    "bytes",
)
_KEPT = {"backup_label": 64 * 1024, "PG_VERSION": 64, "global/pg_control": 16, "tablespace_map": 64 * 1024}
_LABEL_START = re.compile(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)$", re.MULTILINE)
_LABEL_TIMELINE = re.compile(r"^START TIMELINE: ([0-9]+)$", re.MULTILINE)
_LABEL_TIME = re.compile(r"^START TIME: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (UTC|GMT)$", re.MULTILINE)
_SEGMENT_SIZES = tuple(1 << bits for bits in range(20, 31))  # initdb --wal-segsize: 1 MiB .. 1 GiB


class TarSink(Protocol):
    """Receives a validated archive's entries as they stream (paths are already safe and relative)."""

    def directory(self, path: str, mode: int) -> None: ...

    def begin_file(self, path: str, mode: int, size: int) -> None: ...

    def data(self, chunk: memoryview) -> None: ...

    def end_file(self) -> None: ...


def safe_member_path(raw: str) -> str:
    """A member's path relative to the data directory, or InvalidDumpError for one that could escape it."""
    path = raw[2:] if raw.startswith("./") else raw
    path = path.rstrip("/")
    parts = path.split("/")
    if not path or raw.startswith("/") or any(part in ("", "..") for part in parts) or "\0" in path:
        raise InvalidDumpError(f"tar member {raw!r} has an unsafe path (absolute, empty or with '..')")
    return path


class BaseBackupValidator:
    """A ``StreamValidator`` for ``pg_basebackup`` tar streams; ``wal_segment_size`` is the server's, when
    known (otherwise deduced from ``backup_label``)."""

    name = "pg_basebackup tar"

    def __init__(self, *, wal_segment_size: int | None = None, sink: TarSink | None = None) -> None:
        self._segment_size = wal_segment_size
        self._sink = sink
        self._total = 0
        self._header = bytearray()
        self._state = "header"  # header, data, padding, end, failed
        self._size = 0  # the current member's size
        self._left = 0  # data or padding bytes of the current member still to come
        self._pad = 0
        self._path = ""
        self._hash: hashlib._Hash | None = None
        self._kept: bytearray | None = None
        self._manifest: ManifestReader | None = None
        self._reader = ManifestReader(self._listed)
        self._zero_blocks = 0
        self._error: str | None = None
        self._streamed: dict[str, tuple[int, str]] = {}  # files hashed, not yet matched with an entry
        self._expected: dict[str, ManifestFile] = {}  # entries read, not yet matched with a file
        self._matched: set[str] = set()
        self.small: dict[str, bytes] = {}
        self.files = 0
        self.label_modified = ""

    # ---------------------------------------------------------------- streaming

    def feed(self, chunk: Chunk) -> None:
        self._total += len(chunk)
        if self._error is None:
            try:
                self._consume(memoryview(chunk).cast("B"))
            except InvalidDumpError as exc:
                self._error = str(exc)
                self._state = "failed"
        if self._error is not None:
            raise InvalidDumpError(f"invalid {self.name} after {self._total} bytes: {self._error}")

    def _consume(self, view: memoryview) -> None:
        while view:
            if self._state == "header":
                take = 512 - len(self._header)
                self._header += view[:take]
                view = view[take:]
                if len(self._header) == 512:
                    header = bytes(self._header)
                    self._header.clear()
                    self._on_header(header)
            elif self._state == "data":
                piece = view[: self._left]
                view = view[len(piece) :]
                self._left -= len(piece)
                self._on_data(piece)
                if self._left == 0:
                    self._end_member()
            elif self._state == "padding":
                piece = view[: self._pad]
                view = view[len(piece) :]
                self._pad -= len(piece)
                if self._pad == 0:
                    self._state = "header"
            else:  # after the end-of-archive marker: only zero padding
                if bytes(view).strip(b"\0"):
                    raise InvalidDumpError("non-zero data after the end-of-archive marker")
                return

    def _on_header(self, header: bytes) -> None:
        if header == bytes(512):
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self._state = "end"
            return
        if self._zero_blocks:
            raise InvalidDumpError("a single zero block is not an end-of-archive marker")
        if not _checksum_ok(header):
            raise InvalidDumpError(f"tar header checksum mismatch after {self.files} files")
        name = header[0:100].split(b"\0", 1)[0]
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
        raw = (prefix + b"/" + name if prefix else name).decode("utf-8", "surrogateescape")
        typeflag, size, mode = header[156:157], _tar_number(header[124:136]), _tar_number(header[100:108]) & 0o7777
        if typeflag == b"5" and raw.strip("/") in ("", "."):
            return  # the archive's root: the data directory itself
        path = safe_member_path(raw)
        if typeflag == b"5":
            if self._sink is not None:
                self._sink.directory(path, mode)
            return
        if typeflag not in (b"0", b"\0"):
            kind = {b"1": "a hard link", b"2": "a symbolic link"}.get(typeflag, f"of tar type {typeflag!r}")
            raise InvalidDumpError(
                f"tar member {path!r} is {kind}: only files and directories are supported (a base backup with"
                " tablespaces or links cannot be streamed and restored. Fix: move the tablespace's tables"
                " to pg_default)"
            )
        self._path = path
        self._hash = hashlib.sha256()
        self._kept = bytearray() if path in _KEPT else None
        self._manifest = self._reader if path == "backup_manifest" else None
        if path in self._streamed or path in self._matched:
            raise InvalidDumpError(f"tar member {path!r} appears twice")
        if self._sink is not None:
            self._sink.begin_file(path, mode, size)
        self._size, self._left, self._pad = size, size, -size % 512
        self._state = "data"
        if size == 0:
            self._end_member()

    def _on_data(self, piece: memoryview) -> None:
        assert self._hash is not None  # noqa: S101 - set by the member's header
        self._hash.update(piece)
        if self._kept is not None and len(self._kept) < _KEPT[self._path]:
            self._kept += piece[: _KEPT[self._path] - len(self._kept)]
        if self._manifest is not None:
            self._manifest.feed(piece)
        if self._sink is not None:
            self._sink.data(piece)

    def _end_member(self) -> None:
        assert self._hash is not None  # noqa: S101
        path, digest = self._path, self._hash.hexdigest()
        size = self._size
        if self._sink is not None:
            self._sink.end_file()
        if self._kept is not None:
            self.small[path] = bytes(self._kept)
        if self._manifest is not None:
            self._manifest.finish()
            self.small["backup_manifest"] = b""
        else:
            self.files += 1
            if path in self._expected:
                self._compare(self._expected.pop(path), size, digest)
            else:
                self._streamed[path] = (size, digest)
        self._hash = None
        self._state = "padding" if self._pad else "header"

    def _listed(self, entry: ManifestFile, line: int) -> None:
        if entry.path in self._expected or entry.path in self._matched:
            raise InvalidDumpError(f"backup_manifest lists {entry.path!r} twice")
        if entry.algorithm != "SHA256":
            raise InvalidDumpError(
                f"backup_manifest checksums {entry.path!r} with {entry.algorithm}, not SHA256."
                " Fix: take the backup with pg_basebackup --manifest-checksums=SHA256 (the agent does)"
            )
        if entry.path == "backup_label":
            self.label_modified = entry.last_modified
        if entry.path in self._streamed:
            size, digest = self._streamed.pop(entry.path)
            self._compare(entry, size, digest)
        else:
            self._expected[entry.path] = entry

    def _compare(self, entry: ManifestFile, size: int, digest: str) -> None:
        if size != entry.size:
            raise InvalidDumpError(f"{entry.path!r} is {size} bytes in the archive, the manifest says {entry.size}")
        if digest != entry.checksum.lower():
            raise InvalidDumpError(f"{entry.path!r} does not match its SHA-256 in backup_manifest: it is corrupt")
        self._matched.add(entry.path)

    # ---------------------------------------------------------------- verdict

    def finish(self) -> dict[str, object]:
        if self._total == 0:
            raise InvalidDumpError(f"empty {self.name}: the dump produced no bytes")
        if self._error is not None:
            raise InvalidDumpError(f"invalid {self.name} after {self._total} bytes: {self._error}")
        if self._state != "end":
            raise InvalidDumpError(f"truncated {self.name}: the stream ended mid-archive after {self._total} bytes")
        if "backup_manifest" not in self.small:
            raise InvalidDumpError(
                "the base backup has no backup_manifest: it cannot be checked (PostgreSQL 13+ writes it)"
            )
        if self._expected:
            missing = sorted(self._expected)
            raise InvalidDumpError(f"{missing[0]!r} is listed in backup_manifest but missing ({len(missing)} in all)")
        if self._streamed:
            extra = sorted(self._streamed)
            raise InvalidDumpError(f"{extra[0]!r} is in the archive but not in backup_manifest ({len(extra)} in all)")
        for needed in ("backup_label", "PG_VERSION", "global/pg_control"):
            if needed not in self.small:
                raise InvalidDumpError(f"the base backup has no {needed}: it is incomplete")
        if self.small.get("tablespace_map", b"").strip():
            raise InvalidDumpError("the base backup has tablespaces (tablespace_map is not empty): not supported")
        facts = self._wal_facts()
        facts["pg_version"] = self.small["PG_VERSION"].decode("ascii", "replace").strip()
        facts["files"] = self.files
        facts["bytes"] = self._total
        return facts

    def _wal_facts(self) -> dict[str, object]:
        label = self.small["backup_label"].decode("utf-8", "replace")
        start, timeline = _LABEL_START.search(label), _LABEL_TIMELINE.search(label)
        if start is None or timeline is None:
            raise InvalidDumpError("backup_label has no START WAL LOCATION or START TIMELINE")
        tli, start_lsn, start_file = int(timeline.group(1)), parse_lsn(start.group(1)), start.group(2)
        ranges = self._reader.wal_ranges
        if ranges[0].timeline != tli or parse_lsn(ranges[0].start_lsn) != start_lsn:
            raise InvalidDumpError("backup_label and backup_manifest disagree on where the backup's WAL starts")
        end_lsn = parse_lsn(ranges[-1].end_lsn)
        size = self._segment_size or _deduced_segment_size(start_lsn, start_file, tli)
        if segment_of(start_lsn, tli, size).name != start_file:
            raise InvalidDumpError(f"backup_label's start file {start_file} is not where {format_lsn(start_lsn)} lies")
        system_identifier = int.from_bytes(self.small["global/pg_control"][:8], "little")
        if self._reader.system_identifier not in (None, system_identifier):
            raise InvalidDumpError("backup_manifest's System-Identifier is not the one in global/pg_control")
        return {
            "system_identifier": str(system_identifier),
            "timeline": ranges[-1].timeline,
            "start_lsn": format_lsn(start_lsn),
            "end_lsn": format_lsn(end_lsn),
            "start_file": start_file,
            # the last segment the backup needs: the one holding the byte before its end position
            "end_file": segment_of(max(end_lsn - 1, start_lsn), ranges[-1].timeline, size).name,
            "wal_segment_size": size,
            "start_time": self._start_time(label),
        }

    def _start_time(self, label: str) -> str:
        found = _LABEL_TIME.search(label)
        # backup_label's time is in the server's log_timezone; its manifest entry's Last-Modified is in GMT
        text = found.group(1) if found else self.label_modified.removesuffix(" GMT")
        try:
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).isoformat()
        except ValueError as exc:
            raise InvalidDumpError("backup_label has no START TIME in UTC and its manifest entry no time") from exc


def _deduced_segment_size(start_lsn: int, start_file: str, timeline: int) -> int:
    """The WAL segment size for which ``start_file`` holds ``start_lsn`` (16 MiB when several do)."""
    try:
        fits = [size for size in _SEGMENT_SIZES if segment_of(start_lsn, timeline, size).name == start_file]
    except WalNameError as exc:
        raise InvalidDumpError(str(exc)) from exc
    if not fits:
        raise InvalidDumpError(f"no WAL segment size puts {format_lsn(start_lsn)} into {start_file}")
    return DEFAULT_SEGMENT_SIZE if DEFAULT_SEGMENT_SIZE in fits else fits[0]
