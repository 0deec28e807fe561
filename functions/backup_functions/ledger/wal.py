"""The WAL archive of PITR targets (docs/ledger.md, "WAL archive"; docs/pitr.md).

Items, all in the target's partition:

- ``TARGET#<t>/WAL#<file>``: one verified archived WAL file (where it is, its SHA-256 and sizes, when it
  was archived and recorded), written once (conditional put: a redelivered ``WAL Archived`` is harmless);
  read in file-name order (``files``), which is archive order, by the restore coordinator;
- ``TARGET#<t>/WALARCHIVE``: the archive's summary (``WalArchive``): the newest file and when it was
  archived, the contiguous-through watermark (``ledger/wal_order.py``), the first missing segment and since
  when, the server's latest status (from heartbeats), and the *lag* watch (``wal-lag``) while the server has
  completed WAL the archive does not have: due ``wal_rpo`` after the newest archived file (or after the
  moment a heartbeat first showed the server ahead, whichever is later), or ``wal_rpo`` after the first good
  base backup while no WAL was ever archived. Written under an optimistic ``revision``;
- ``TARGET#<t>/WALGAP``: the archive's current gap (``WalGap``) with the *gap* watch (``wal-gap``), due
  ``wal_rpo`` after the later segment that revealed it; its watch is removed when the gap is filled or a
  newer base backup starts after it (the archive then restarts at that backup's first segment).

Each write of the summary is derived from the stored files and the previous summary, so every delivery of
the same facts leaves the same items; the gap item is written from the summary after each write (a crash in
between is repaired by the redelivery).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.wal import DEFAULT_SEGMENT_SIZE, WalArchived, WalServerStatus, is_segment, parse_segment
from backup_functions.ledger.client import WATCH_ATTRIBUTES, LedgerClient, LedgerError, Update, epoch_seconds, watch
from backup_functions.ledger.wal_items import WalArchive, WalFile, WalGap, WalRange
from backup_functions.ledger.wal_order import extends, newer, walk

WAL_SK_PREFIX = "WAL#"
ARCHIVE_SK = "WALARCHIVE"
GAP_SK = "WALGAP"
WATCH_WAL_LAG = "wal-lag"
WATCH_WAL_GAP = "wal-gap"
REVISE_ATTEMPTS = 8
_FILES_END = WAL_SK_PREFIX + "\uffff"


def wal_sk(file: str) -> str:
    return f"{WAL_SK_PREFIX}{file}"


Change = Callable[[WalArchive | None], dict[str, Any] | None]


class WalArchives:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    # ----------------------------------------------------------------- reads
    def archive(self, target: str) -> WalArchive | None:
        return WalArchive.parse(self._client.get(keys.target_pk(target), ARCHIVE_SK))

    def archives(self, targets: Iterable[str]) -> dict[str, WalArchive]:
        found = self._client.batch_get((keys.target_pk(t), ARCHIVE_SK) for t in sorted(set(targets)))
        return {a.target: a for a in map(WalArchive.model_validate, found.values())}

    def gap(self, target: str) -> WalGap | None:
        return WalGap.parse(self._client.get(keys.target_pk(target), GAP_SK))

    def file(self, target: str, file: str) -> WalFile | None:
        item = self._client.get(keys.target_pk(target), wal_sk(file))
        return WalFile.of(item) if item else None

    def files(self, target: str, from_file: str) -> Iterator[WalFile]:
        """Every archived file of ``target`` from ``from_file`` (inclusive) on, in file-name order."""
        for item in self._client.query_between(keys.target_pk(target), wal_sk(from_file), _FILES_END):
            yield WalFile.of(item)

    def _rows_after(self, target: str, through: str | None, start: str | None) -> Iterator[tuple[str, datetime]]:
        low = wal_sk(through) + "\u0000" if through else wal_sk(start or "")
        for item in self._client.query_between(keys.target_pk(target), low, _FILES_END):
            yield str(item["file"]), keys.parse_iso(str(item["archived_at"]))

    # ----------------------------------------------------------------- writes (audit)
    def record_file(
        self, archived: WalArchived, *, recorded_at: datetime, wal_rpo: timedelta, expires_at: datetime
    ) -> bool:
        """Record a verified WAL file and bring the summary up to date; False when it was already recorded
        (the summary is brought up to date all the same: a redelivery repairs a crash in between)."""
        item = {
            keys.PK: keys.target_pk(archived.target),
            keys.SK: wal_sk(archived.file),
            "type": "wal",
            "target": archived.target,
            "agent": archived.agent,
            "file": archived.file,
            "bucket": archived.bucket,
            "key": archived.key,
            "sha256": archived.sha256,
            "bytes_stored": archived.bytes_stored,
            "bytes_in": archived.bytes_in,
            "compression": archived.compression,
            "archived_at": archived.archived_at,
            "recorded_at": recorded_at,
            keys.TTL_ATTRIBUTE: epoch_seconds(expires_at),
        }
        new = self._client.put_if_absent(item)
        target, name, at = archived.target, archived.file, archived.archived_at

        def change(current: WalArchive | None) -> dict[str, Any] | None:
            fields = _base(current, target, archived.agent, wal_rpo)
            older = current is not None and current.newest_file is not None and current.newest_file >= name
            if older and current and not extends(current.contiguous_through, current.start_file, name, current.size):
                return None  # an older file than the newest, which moves nothing (a redelivery, a .history)
            if current is None or newer(current.newest_file, name) == name:
                fields |= {"newest_file": name, "newest_archived_at": at}
            fields |= self._advanced(target, current, name, at)
            return fields

        self._revise(target, change)
        return new

    def record_server_status(self, agent: str, status: WalServerStatus, *, wal_rpo: timedelta) -> bool:
        """The server's latest WAL status (from a heartbeat); an older status never replaces a newer one."""

        def change(current: WalArchive | None) -> dict[str, Any] | None:
            if current is not None and current.server_checked_at and current.server_checked_at >= status.checked_at:
                return None
            return _base(current, status.target, agent, wal_rpo) | {
                "server_current_file": status.current_file,
                "server_last_archived_file": status.last_archived_file,
                "server_last_archived_at": status.last_archived_at,
                "server_last_failed_file": status.last_failed_file,
                "server_last_failed_at": status.last_failed_at,
                "server_checked_at": status.checked_at,
            }

        return self._revise(status.target, change)

    def base_backup(
        self,
        target: str,
        agent: str,
        *,
        start_file: str | None,
        good_at: datetime,
        wal_rpo: timedelta,
        segment_size: int | None = None,
    ) -> bool:
        """A good base backup of ``target``: WAL is expected from then on, and the archive starts at its first
        segment when none is known yet or when that segment lies after the archive's gap (the gap no longer
        stops the newest base backup's restores; the older base backups before it stay where they are)."""

        def change(current: WalArchive | None) -> dict[str, Any] | None:
            fields = _base(current, target, agent, wal_rpo)
            if current is None or current.expected_since is None:
                fields["expected_since"] = good_at
            if segment_size and (current is None or current.segment_size != segment_size):
                fields["segment_size"] = segment_size  # the server's (initdb --wal-segsize), from the manifest
            newest_start = newer(current.newest_base_start if current else None, start_file)
            if newest_start != (current.newest_base_start if current else None):
                fields["newest_base_start"] = newest_start
            restart = start_file is not None and (
                current is None
                or (current.start_file is None and current.contiguous_through is None)
                or (current.first_missing is not None and start_file > current.first_missing)
            )
            if restart:
                fields |= {"start_file": start_file, "contiguous_through": None, "contiguous_at": None}
                fields |= _no_gap()
                previous = current.model_dump() if current else {"sk": ARCHIVE_SK}
                restarted = WalArchive.model_validate({**previous, **fields, "pk": keys.target_pk(target)})
                fields |= self._advanced(target, restarted, start_file or "", None, force=True)
            elif start_file is not None and current is not None and current.start_file is None:
                fields["start_file"] = start_file
            return fields if fields != _base(current, target, agent, wal_rpo) or restart else None

        return self._revise(target, change)

    def set_range(self, target: str, run_id: str, wal_range: WalRange | None, *, now: datetime) -> bool:
        """Record (or, with None, forget) a base backup's own WAL range and its tag; ranges whose tier's days
        have ended are forgotten at the same time. False when nothing changes."""

        def change(current: WalArchive | None) -> dict[str, Any] | None:
            if current is None and wal_range is None:
                return None
            ranges = dict(current.ranges) if current else {}
            if wal_range is None:
                ranges.pop(run_id, None)
            else:
                ranges[run_id] = wal_range
            ranges = {k: r for k, r in ranges.items() if r.until is None or r.until > now}
            if current is not None and ranges == current.ranges:
                return None
            fields = {"target": target, "ranges": {k: r.model_dump(exclude_none=True) for k, r in ranges.items()}}
            return fields if ranges or current is not None else None

        return self._revise(target, change)

    # ----------------------------------------------------------------- internals
    def _advanced(
        self, target: str, current: WalArchive | None, name: str, at: datetime | None, *, force: bool = False
    ) -> dict[str, Any]:
        """The watermark and gap fields once ``name`` (archived at ``at``) is recorded. A gap found before the
        newest good base backup's first segment restarts the archive there instead (that base backup does not
        need the missing segment, and the older ones cannot be helped by an alert: only a new base backup helps)."""
        fields = self._moved(target, current, name, at, force=force)
        latest = current.newest_base_start if current else None
        missing = fields.get("first_missing")
        if current is None or latest is None or missing is None or not missing < latest:
            return fields
        restarted = current.model_copy(
            update={"start_file": latest, "contiguous_through": None, "contiguous_at": None, **_no_gap()}
        )
        return {"start_file": latest, "contiguous_at": None, **self._moved(target, restarted, latest, None, force=True)}

    def _moved(
        self, target: str, current: WalArchive | None, name: str, at: datetime | None, *, force: bool = False
    ) -> dict[str, Any]:
        through = current.contiguous_through if current else None
        start = current.start_file if current else None
        size = current.size if current else DEFAULT_SEGMENT_SIZE
        if force or extends(through, start, name, size):
            moved = walk(through, start, self._rows_after(target, through, start), size)
            fields: dict[str, Any] = {"contiguous_through": moved.through}
            if moved.through != through:
                fields["contiguous_at"] = moved.through_at
            if moved.first_missing is None:
                return fields | _no_gap()
            keep_since = current is not None and current.first_missing == moved.first_missing and current.gap_since
            return fields | {
                "first_missing": moved.first_missing,
                "gap_since": current.gap_since if keep_since and current else moved.later_at,
                "gap_later_file": current.gap_later_file if keep_since and current else moved.later_file,
            }
        if current is None or current.first_missing is not None or at is None or not is_segment(name):
            return {}
        if through is not None:
            missing = parse_segment(through, size).next().name
            if parse_segment(name, size) <= parse_segment(through, size):
                return {}
        elif start is not None and name > start:
            missing = start
        else:
            return {}
        return {"first_missing": missing, "gap_since": at, "gap_later_file": name}

    def _revise(self, target: str, change: Change) -> bool:
        """Apply ``change`` to the summary under its revision (re-read and re-applied on a concurrent write)."""
        pk = keys.target_pk(target)
        for _ in range(REVISE_ATTEMPTS):
            current = self.archive(target)
            fields = change(current)
            if fields is None:
                self._sync_gap(current)
                return False
            previous = current.model_dump() if current else {"sk": ARCHIVE_SK}
            merged = WalArchive.model_validate({**previous, **fields, "pk": pk})
            revision = current.revision if current else 0
            deadline = merged.lag_deadline
            watch_fields = watch(target, WATCH_WAL_LAG, deadline) if deadline else {}
            if not merged.server_ahead:
                fields["behind_since"] = None
            elif merged.behind_since is None:
                fields["behind_since"] = merged.server_checked_at
                merged = merged.model_copy(update={"behind_since": merged.server_checked_at})
                deadline = merged.lag_deadline
                watch_fields = watch(target, WATCH_WAL_LAG, deadline) if deadline else {}
            update = Update().set(type="wal-archive", **fields, **watch_fields, revision=revision + 1)
            cleared = [name for name, value in fields.items() if value is None]
            update.remove(*cleared, *([] if watch_fields else WATCH_ATTRIBUTES))
            condition = update.absent() if current is None else update.equals("revision", revision)
            if self._client.update(pk, ARCHIVE_SK, update, condition) is not None:
                if merged.first_missing is not None or (current is not None and current.first_missing is not None):
                    self._sync_gap(merged)  # (no gap before or after: nothing to open or close)
                return True
        raise LedgerError(f"the WAL archive summary of {target} changed under {REVISE_ATTEMPTS} attempts")

    def _sync_gap(self, archive: WalArchive | None) -> None:
        """The gap item as the summary says: open and watched while a segment is missing, else closed."""
        if archive is None:
            return
        pk = keys.target_pk(archive.target)
        if archive.first_missing is not None and archive.gap_since is not None and archive.wal_rpo is not None:
            update = Update().set(
                type="wal-gap",
                target=archive.target,
                agent=archive.agent,
                first_missing=archive.first_missing,
                since=archive.gap_since,
                later_file=archive.gap_later_file,
                contiguous_through=archive.contiguous_through,
                closed=False,
                **watch(archive.target, WATCH_WAL_GAP, archive.gap_since + archive.wal_rpo),
            )
            self._client.update(pk, GAP_SK, update)
            return
        update = Update().set(closed=True, contiguous_through=archive.contiguous_through).remove(*WATCH_ATTRIBUTES)
        self._client.update(pk, GAP_SK, update, f"{update.exists()} AND {update.equals('closed', False)}")


def _base(current: WalArchive | None, target: str, agent: str | None, wal_rpo: timedelta) -> dict[str, Any]:
    fields: dict[str, Any] = {"target": target, "wal_rpo_s": int(wal_rpo.total_seconds())}
    if agent and (current is None or current.agent != agent):
        fields["agent"] = agent
    return fields


def _no_gap() -> dict[str, Any]:
    return {"first_missing": None, "gap_since": None, "gap_later_file": None}
