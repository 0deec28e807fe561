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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import model_validator

from backup_contracts import ledger as keys
from backup_contracts.wal import WalArchived, WalServerStatus, is_segment, parse_segment
from backup_functions.ledger.client import WATCH_ATTRIBUTES, LedgerClient, LedgerError, Update, epoch_seconds, watch
from backup_functions.ledger.items import WatchedItem, _named_by_key
from backup_functions.ledger.wal_order import extends, newer, server_ahead, walk

WAL_SK_PREFIX = "WAL#"
ARCHIVE_SK = "WALARCHIVE"
GAP_SK = "WALGAP"
WATCH_WAL_LAG = "wal-lag"
WATCH_WAL_GAP = "wal-gap"
REVISE_ATTEMPTS = 8
_FILES_END = WAL_SK_PREFIX + "\uffff"


def wal_sk(file: str) -> str:
    return f"{WAL_SK_PREFIX}{file}"


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
        return server_ahead(self.server_current_file, self.contiguous_through or self.newest_file)

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
            if older and current and not extends(current.contiguous_through, current.start_file, name):
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
        self, target: str, agent: str, *, start_file: str | None, good_at: datetime, wal_rpo: timedelta
    ) -> bool:
        """A good base backup of ``target``: WAL is expected from then on, and the archive starts at its first
        segment when none is known yet or when that segment lies after the archive's gap (the gap no longer
        stops the newest base backup's restores; the older base backups before it stay where they are)."""

        def change(current: WalArchive | None) -> dict[str, Any] | None:
            fields = _base(current, target, agent, wal_rpo)
            if current is None or current.expected_since is None:
                fields["expected_since"] = good_at
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
        if force or extends(through, start, name):
            moved = walk(through, start, self._rows_after(target, through, start))
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
            missing = parse_segment(through).next().name
            if parse_segment(name) <= parse_segment(through):
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
