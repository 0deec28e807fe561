"""PostgreSQL WAL archive: file names, positions, and the contracts that carry them (docs/pitr.md).

A PITR target (``engine: postgresql-physical``) archives every WAL file its server completes through
``backup-agent wal-push`` into ``agents/<agent>/<target>/wal/<file>.zst`` (``naming.wal_object_key``).
Defined once here for the agent, the audit, the watchdog and the restore coordinator:

- WAL file names and their order: a segment ``TTTTTTTTXXXXXXXXYYYYYYYY`` (timeline, then the segment
  number split in two), a timeline history ``TTTTTTTT.history``, a backup history file
  ``<segment>.XXXXXXXX.backup`` and a ``<segment>.partial`` left at a promotion;
- log sequence numbers (``0/3000028``) and which segment holds one;
- ``WalArchived`` (agent → audit, one per archived file), ``WalServerStatus`` (in the agent's
  heartbeat: where the server's WAL stands), and ``WalIndex`` (coordinator → agent at restore time: the
  archived files a recovery may fetch, each through its own presigned URL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, HttpUrl, StringConstraints

from backup_contracts.bounds import ByteCount, Label, Name, ObjectKey, Sha256Hex, Timestamp
from backup_contracts.contract import Contract

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024  # initdb --wal-segsize; recorded per base backup
WAL_FILE_PATTERN = r"^[0-9A-F]{8}(?:[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|\.history)$"
WAL_FILE_RE = re.compile(WAL_FILE_PATTERN)
_SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
INDEX_FILES_MAX = 1_000_000  # a month of WAL at a segment a second would still fit

WalFileName = Annotated[str, StringConstraints(pattern=WAL_FILE_PATTERN)]
Lsn = Annotated[str, StringConstraints(pattern=r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")]


class WalNameError(ValueError):
    """Not a WAL file name or position PostgreSQL would write."""


def is_wal_file(name: str) -> bool:
    return WAL_FILE_RE.fullmatch(name) is not None


def is_segment(name: str) -> bool:
    """A full WAL segment (not a history, backup history or partial file)."""
    return _SEGMENT_RE.fullmatch(name) is not None


@dataclass(frozen=True, order=True)
class Segment:
    """One WAL segment: its timeline and its number; ordered by (timeline, number)."""

    timeline: int
    number: int
    size: int = DEFAULT_SEGMENT_SIZE

    @property
    def name(self) -> str:
        per_id = 0x1_0000_0000 // self.size
        return f"{self.timeline:08X}{self.number // per_id:08X}{self.number % per_id:08X}"

    def next(self) -> Segment:
        return Segment(self.timeline, self.number + 1, self.size)

    def start_lsn(self) -> int:
        return self.number * self.size


def parse_segment(name: str, size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    """``000000010000000000000003`` → Segment(1, 3); also the segment a ``.partial`` or ``.backup`` file names."""
    match = _SEGMENT_RE.fullmatch(name[:24]) if is_wal_file(name) else None
    if match is None:
        raise WalNameError(f"{name!r} is not a WAL segment name (24 hex digits: timeline, log, segment)")
    timeline, log, seg = (int(part, 16) for part in match.groups())
    per_id = 0x1_0000_0000 // size
    if seg >= per_id:
        raise WalNameError(f"{name!r}: segment {seg:#x} is past the {per_id} per log of {size}-byte segments")
    return Segment(timeline, log * per_id + seg, size)


def parse_lsn(text: str) -> int:
    """``0/3000028`` → 0x3000028."""
    match = _LSN_RE.fullmatch(text.strip())
    if match is None:
        raise WalNameError(f"{text!r} is not a log sequence number such as 0/3000028")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFF_FFFF:X}"


def segment_of(lsn: int | str, timeline: int, size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    """The segment that holds ``lsn`` on ``timeline``."""
    value = parse_lsn(lsn) if isinstance(lsn, str) else lsn
    return Segment(timeline, value // size, size)


def history_timeline(name: str) -> int | None:
    """2 for ``00000002.history``; None for any other file."""
    return int(name[:8], 16) if name.endswith(".history") and is_wal_file(name) else None


# --------------------------------------------------------------------------- contracts


class WalArchived(Contract):
    """One WAL file stored in the archive (agent → audit): the audit checks the object before it counts."""

    agent: Name
    target: Name
    file: WalFileName
    bucket: Label
    key: ObjectKey
    sha256: Sha256Hex = Field(description="SHA-256 of the stored (compressed) object")
    bytes_in: ByteCount
    bytes_stored: ByteCount = Field(gt=0)
    compression: Label
    archived_at: Timestamp


class WalServerStatus(Contract):
    """Where one PITR target's server stands (heartbeat): what it is writing, what it archived, what failed."""

    target: Name
    current_file: WalFileName = Field(description="the segment the server writes now (pg_current_wal_lsn)")
    last_archived_file: WalFileName | None = None
    last_archived_at: Timestamp | None = None
    last_failed_file: WalFileName | None = None
    last_failed_at: Timestamp | None = None
    checked_at: Timestamp


class WalIndexEntry(Contract):
    name: WalFileName
    url: HttpUrl = Field(description="short-lived GET URL for exactly this archived file")
    sha256: Sha256Hex
    bytes_stored: ByteCount = Field(gt=0)
    compression: Label


class WalIndex(Contract):
    """The archived WAL a point-in-time restore may replay (written by the coordinator, fetched by the
    agent through a presigned URL whose SHA-256 the job carries)."""

    target: Name
    timeline: int = Field(ge=1, le=0xFFFF_FFFF)
    start_file: WalFileName = Field(description="the base backup's first segment")
    files: list[WalIndexEntry] = Field(max_length=INDEX_FILES_MAX)


# --------------------------------------------------------------------------- retention

WAL_TIER = "wal"  # an archived WAL file's retention tag is ``<class>-wal`` (naming.retention_tag_value)
WAL_EXTRA_DAYS = 1  # lifecycle runs once a day: WAL outlives the oldest daily base backup it serves by a day


def wal_retention_days(daily_days: int) -> int:
    """How long archived WAL of a retention class is kept: the point-in-time window reaches back to the
    oldest daily base backup (``daily_days``), and the WAL after it must still be there (one day more)."""
    return daily_days + WAL_EXTRA_DAYS
