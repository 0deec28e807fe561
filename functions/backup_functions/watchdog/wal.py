"""What the watchdog records about a PITR target's WAL archive when its lag or gap watch is overdue.

The watches themselves are the ledger's (``ledger/wal.py``): the archive summary's ``wal-lag`` watch while
the server has completed WAL the archive lacks, the gap item's ``wal-gap`` watch while a segment is
missing. Overdue, each opens one incident for its target (``target:<t>#wal-lag`` / ``#wal-gap``) through the
watchdog's usual open / remind / resolve; these are the facts its alerts show (``wal_alerts.py``), stored
as text on the incident (a re-sent alert must not change).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backup_contracts import ledger as keys
from backup_functions.ledger.wal import WalArchive, WalGap


def _text(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        name: keys.iso(value) if isinstance(value, datetime) else value
        for name, value in fields.items()
        if value is not None
    }


def archive_details(archive: WalArchive) -> dict[str, Any]:
    """The lag incident's facts: what is archived, where the server is, whether its archiving fails."""
    return _text(
        {
            "newest_file": archive.newest_file,
            "newest_archived_at": archive.newest_archived_at,
            "contiguous_through": archive.contiguous_through,
            "server_current_file": archive.server_current_file,
            "server_checked_at": archive.server_checked_at,
            "server_last_archived_file": archive.server_last_archived_file,
            "server_last_archived_at": archive.server_last_archived_at,
            "server_last_failed_file": archive.server_last_failed_file if archive.failing else None,
            "server_last_failed_at": archive.server_last_failed_at if archive.failing else None,
            "expected_since": archive.expected_since if archive.newest_file is None else None,
            "wal_rpo_s": archive.wal_rpo_s,
        }
    )


def gap_details(gap: WalGap) -> dict[str, Any]:
    """The gap incident's facts: which segment is missing, since when, and what is archived around it."""
    return _text(
        {
            "first_missing": gap.first_missing,
            "gap_since": gap.since,
            "later_file": gap.later_file,
            "contiguous_through": gap.contiguous_through,
        }
    )


def details(item: object) -> dict[str, Any]:
    if isinstance(item, WalArchive):
        return archive_details(item)
    if isinstance(item, WalGap):
        return gap_details(item)
    return {}
