"""The typed models of the WAL archive's ledger items (``ledger/wal.py`` reads and writes them; docs/ledger.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backup_contracts import ledger as keys
from backup_contracts.wal import DEFAULT_SEGMENT_SIZE
from backup_functions.ledger.items import WatchedItem, _named_by_key
from backup_functions.ledger.wal_order import server_ahead


@dataclass(frozen=True)
class WalFile:
    """One archived WAL file, verified by the audit."""

    target: str
    file: str
    key: str
    bucket: str
    sha256: str
    bytes_stored: int
    bytes_in: int
    compression: str
    archived_at: datetime
    recorded_at: datetime

    @classmethod
    def of(cls, item: dict[str, Any]) -> WalFile:
        return cls(
            target=str(item["target"]),
            file=str(item["file"]),
            key=str(item["key"]),
            bucket=str(item["bucket"]),
            sha256=str(item["sha256"]),
            bytes_stored=int(item["bytes_stored"]),
            bytes_in=int(item["bytes_in"]),
            compression=str(item["compression"]),
            archived_at=keys.parse_iso(str(item["archived_at"])),
            recorded_at=keys.parse_iso(str(item["recorded_at"])),
        )


class WalRange(BaseModel):
    """The WAL inside a retained base backup's own range (its first to its last segment), kept as long as
    that backup is: tagged as it is (``audit/wal_keeping.py``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    start_file: str
    end_file: str
    started_at: datetime
    tag: str | None = None  # the WAL's tag value while it is not the daily window's (keep, <class>-<tier>)
    until: datetime | None = None  # when that tier's days end (None: kept, no end)

    def covers(self, file: str) -> bool:
        return self.start_file <= file[:24] <= self.end_file


class WalArchive(WatchedItem):
    """``TARGET#<t>/WALARCHIVE``: what the control plane knows of a target's WAL archive."""

    target: str
    agent: str | None = None
    wal_rpo_s: int | None = None
    start_file: str | None = None  # where the archive starts: a good base backup's first segment
    newest_base_start: str | None = None  # the first segment of the newest good base backup known
    expected_since: datetime | None = None  # the first good base backup: WAL is expected from then on
    newest_file: str | None = None
    newest_archived_at: datetime | None = None
    contiguous_through: str | None = None
    contiguous_at: datetime | None = None
    first_missing: str | None = None
    gap_since: datetime | None = None
    gap_later_file: str | None = None
    server_current_file: str | None = None
    server_last_archived_file: str | None = None
    server_last_archived_at: datetime | None = None
    server_last_failed_file: str | None = None
    server_last_failed_at: datetime | None = None
    server_checked_at: datetime | None = None
    behind_since: datetime | None = None  # a heartbeat first showed the server ahead of the watermark
    ranges: dict[str, WalRange] = Field(default_factory=dict)  # by run id: retained base backups' own WAL
    segment_size: int | None = None  # the server's WAL segment size, from a base backup's manifest
    revision: int = 0

    @model_validator(mode="before")
    @classmethod
    def _target_from_key(cls, data: Any) -> Any:
        return _named_by_key(data, "target")

    @property
    def wal_rpo(self) -> timedelta | None:
        return timedelta(seconds=self.wal_rpo_s) if self.wal_rpo_s else None

    @property
    def server_ahead(self) -> bool:
        return server_ahead(self.server_current_file, self.contiguous_through or self.newest_file, self.size)

    @property
    def size(self) -> int:
        return self.segment_size or DEFAULT_SEGMENT_SIZE

    @property
    def failing(self) -> bool:
        """The server's last archive attempt failed after its last success."""
        failed, done = self.server_last_failed_at, self.server_last_archived_at
        return failed is not None and (done is None or failed > done)

    @property
    def lag_deadline(self) -> datetime | None:
        """When archiving is late (the ``wal-lag`` watch), or None while it keeps up."""
        rpo = self.wal_rpo
        if rpo is None:
            return None
        if self.newest_archived_at is None:
            return self.expected_since + rpo if self.expected_since else None
        if not self.server_ahead:
            return None
        return max(self.newest_archived_at, self.behind_since or self.newest_archived_at) + rpo


class WalGap(WatchedItem):
    """``TARGET#<t>/WALGAP``: the archive's current (or last) gap; watched while it is open."""

    target: str
    agent: str | None = None
    first_missing: str | None = None
    since: datetime | None = None
    later_file: str | None = None
    contiguous_through: str | None = None
    closed: bool = False

    @model_validator(mode="before")
    @classmethod
    def _target_from_key(cls, data: Any) -> Any:
        return _named_by_key(data, "target")
