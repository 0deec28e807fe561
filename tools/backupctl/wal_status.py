"""``backupctl status``'s WAL column: how far each PITR target's WAL archive is behind its server.

Read from the archive summary the audit keeps (``TARGET#<t>/WALARCHIVE``, one BatchGetItem for every PITR
target of the fleet). The cell, worst first:

- ``GAP at <segment>``: a segment is missing while later ones are archived (restores cannot pass it);
- ``LAG 12m``: the server has completed WAL the archive lacks, and the newest archived file is older than
  the target's ``wal_rpo`` (``behind 40s`` while it is not yet);
- ``NONE 12m``: no WAL archived since the first good base backup, for longer than ``wal_rpo`` (``none yet``);
- ``ok 40s``: the archive has everything the server completed; the age of its newest file.

`` (failing)`` is added when the server's last archive attempt failed after its last success.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backup_contracts.formatting import format_age
from backup_functions.ledger import WalArchive


@dataclass(frozen=True)
class WalView:
    wal_rpo: timedelta
    newest_file: str | None = None
    newest_archived_at: datetime | None = None
    contiguous_through: str | None = None
    first_missing: str | None = None
    gap_since: datetime | None = None
    expected_since: datetime | None = None
    server_current_file: str | None = None
    server_checked_at: datetime | None = None
    server_ahead: bool = False
    failing: bool = False

    @classmethod
    def of(cls, archive: WalArchive | None, wal_rpo: timedelta) -> WalView:
        if archive is None:
            return cls(wal_rpo)
        return cls(
            wal_rpo=wal_rpo,
            newest_file=archive.newest_file,
            newest_archived_at=archive.newest_archived_at,
            contiguous_through=archive.contiguous_through,
            first_missing=archive.first_missing,
            gap_since=archive.gap_since,
            expected_since=archive.expected_since,
            server_current_file=archive.server_current_file,
            server_checked_at=archive.server_checked_at,
            server_ahead=archive.server_ahead,
            failing=archive.failing,
        )

    def lag(self, now: datetime) -> timedelta | None:
        """How long the server has had WAL the archive lacks (0 while it keeps up); None: nothing archived."""
        if self.newest_archived_at is None:
            return None
        return max(now - self.newest_archived_at, timedelta(0)) if self.server_ahead else timedelta(0)

    def cell(self, now: datetime) -> str:
        suffix = " (failing)" if self.failing else ""
        if self.first_missing is not None:
            return f"GAP at {self.first_missing}{suffix}"
        if self.newest_archived_at is None:
            waited = now - self.expected_since if self.expected_since else None
            late = waited is not None and waited > self.wal_rpo
            return (f"NONE {format_age(waited)}" if late and waited else "none yet") + suffix
        age = now - self.newest_archived_at
        if self.server_ahead:
            return f"{'LAG' if age > self.wal_rpo else 'behind'} {format_age(age)}{suffix}"
        return f"ok {format_age(age)}{suffix}"

    def as_json(self, now: datetime) -> dict[str, Any]:
        lag = self.lag(now)
        return {
            "cell": self.cell(now),
            "wal_rpo_s": int(self.wal_rpo.total_seconds()),
            "lag_s": int(lag.total_seconds()) if lag is not None else None,
            "newest_file": self.newest_file,
            "newest_archived_at": self.newest_archived_at,
            "contiguous_through": self.contiguous_through,
            "first_missing": self.first_missing,
            "gap_since": self.gap_since,
            "server_current_file": self.server_current_file,
            "server_checked_at": self.server_checked_at,
            "server_ahead": self.server_ahead,
            "failing": self.failing,
        }
