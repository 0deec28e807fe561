"""The WAL a retained base backup needs to reach consistency is kept as long as that backup (docs/pitr.md).

Every verified WAL file is tagged ``retention=<class>-wal`` (the daily point-in-time window, ``audit/wal.py``).
The files inside a base backup's own range — its first to its last segment, from the ``start_file`` and
``end_file`` its manifest names — are what a restore of that backup to its end replays, so they carry the
backup's own retention instead, whenever it lives longer than the window:

- a weekly or monthly base backup's range is tagged ``<class>-weekly`` / ``<class>-monthly`` (and locked, with
  Object Lock, until the backup's start + that tier's days, never shortened);
- a keep-set member's range is tagged ``keep`` (no lifecycle rule matches it) for as long as it is a member,
  and gets the tier's tag back when it leaves the set.

The ranges live on the archive summary (``WalArchive.ranges``). Why a file's tag can never end up wrong, with
the base backup's tagging (``Keeper._apply`` → ``apply``) and the file's recording (``audit/wal.py``) running
concurrently: ``apply`` writes the range's tag *before* it tags the files recorded in the range; the audit
of a file chooses its tag from the ranges, records the file, then reads the ranges again and retags when
they changed. Whichever writes last has read the final range tag, or the file was recorded before the
range's files were listed (and ``apply``, which wrote after, tagged it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from backup_contracts.fleet import Fleet, Target
from backup_contracts.naming import KEEP_TAG_VALUE, RETENTION_TAG, retention_tag_value
from backup_contracts.wal import WAL_TIER, is_segment, is_wal_file, wal_retention_days
from backup_functions.audit.keeping import plan_lock
from backup_functions.clock import Clock
from backup_functions.ledger import Ledger
from backup_functions.ledger.wal import WalRange
from backup_functions.ports import ObjectStore, Retention

log = logging.getLogger(__name__)

MANIFEST_SECTIONS = ("validator", "facts", "wal")  # the manifest sections that may name a base backup's WAL
START_FILE_FIELDS = ("start_file", "wal_start_file")
END_FILE_FIELDS = ("end_file", "wal_end_file")


def manifest_places(manifest: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    """Where a base backup's manifest may name its WAL facts: the top level, then each of its sections."""
    if not manifest:
        return
    for place in (manifest, *(manifest.get(name) for name in MANIFEST_SECTIONS)):
        if isinstance(place, Mapping):
            yield place


def _first(place: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    return next((place.get(name) for name in names if place.get(name)), None)


def start_file_of(manifest: Mapping[str, Any] | None) -> str | None:
    """A base backup's first WAL segment, as its sidecar manifest names it (``start_file`` or ``wal_start_file``);
    None when it names none (the archive then starts at its first file)."""
    for place in manifest_places(manifest):
        for name in START_FILE_FIELDS:
            value = place.get(name)
            if isinstance(value, str) and is_wal_file(value):
                return value[:24]
    return None


def manifest_range(manifest: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(first segment, last segment) a base backup's manifest names (``start_file`` / ``end_file``)."""
    for place in manifest_places(manifest):
        start, end = _first(place, START_FILE_FIELDS), _first(place, END_FILE_FIELDS)
        if isinstance(start, str) and is_segment(start[:24]):
            return start[:24], end[:24] if isinstance(end, str) and is_segment(end[:24]) else None
    return None, None


def segment_size_of(manifest: Mapping[str, Any] | None) -> int | None:
    """The server's WAL segment size a base backup's manifest names (``wal_segment_size``: a power of two from
    1 MiB to 1 GiB, as initdb allows), or None."""
    for place in manifest_places(manifest):
        value = place.get("wal_segment_size")
        if isinstance(value, int) and 1 << 20 <= value <= 1 << 30 and value & (value - 1) == 0:
            return value
    return None


class WalRanges:
    def __init__(self, fleet: Fleet, ledger: Ledger, objects: ObjectStore, clock: Clock) -> None:
        self.fleet = fleet
        self.ledger = ledger
        self.objects = objects
        self.clock = clock

    def _window_tag(self, target: Target) -> str:
        return retention_tag_value(target.retention, WAL_TIER)

    def _until(self, target: Target, tag: str, started_at: datetime) -> datetime | None:
        """When a range tagged ``tag`` may go (its tier's days from the backup's start); None for keep."""
        if tag == KEEP_TAG_VALUE:
            return None
        days = self.fleet.retention_classes[target.retention].tiers().get(tag.removeprefix(f"{target.retention}-"))
        return started_at + timedelta(days=days) if days else None

    def record(self, target: Target, run_id: str, started_at: datetime, start: str | None, end: str | None) -> None:
        """A good base backup's own range (before its tag is applied: ``apply`` finds it then)."""
        if not target.pitr or start is None or end is None:
            return
        current = self.ledger.wal.archive(target.name)
        known = current.ranges.get(run_id) if current else None
        if known is None:
            wal_range = WalRange(start_file=start, end_file=end, started_at=started_at)
            self.ledger.wal.set_range(target.name, run_id, wal_range, now=self.clock.now())

    def apply(self, target: Target, run_id: str, backup_tag: str) -> None:
        """The base backup ``run_id`` now carries ``backup_tag`` (keep or its tier's): its range's WAL too."""
        current = self.ledger.wal.archive(target.name) if target.pitr else None
        known = current.ranges.get(run_id) if current else None
        if known is None:
            return
        daily = backup_tag == retention_tag_value(target.retention, "daily")
        tag = None if daily else backup_tag  # a daily backup's range is the window's (its entry ends with it)
        changed = known.model_copy(update={"tag": tag, "until": self._until(target, backup_tag, known.started_at)})
        if changed != known:
            self.ledger.wal.set_range(target.name, run_id, changed, now=self.clock.now())
        value = tag or self._window_tag(target)
        for file in self.ledger.wal.files(target.name, known.start_file):
            if file.file[:24] > known.end_file:
                break
            self._put(file.bucket, file.key, value, changed.until, target)

    def choice(self, target: Target, file: str, archived_at: datetime) -> tuple[str, datetime]:
        """The tag and the lock end of a WAL file: the longest-kept range covering it, else the window."""
        window = (self._window_tag(target), archived_at + timedelta(days=self._window_days(target)))
        current = self.ledger.wal.archive(target.name)
        covering = [r for r in (current.ranges.values() if current else ()) if r.tag and r.covers(file)]
        if not covering:
            return window
        keep = [r for r in covering if r.tag == KEEP_TAG_VALUE]
        best = (
            keep[0] if keep else max(covering, key=lambda r: r.until or datetime.max.replace(tzinfo=archived_at.tzinfo))
        )
        until = max(window[1], best.until) if best.until else window[1]
        return str(best.tag), until

    def _window_days(self, target: Target) -> int:
        return wal_retention_days(self.fleet.retention_classes[target.retention].daily_days)

    def _put(self, bucket: str, key: str, tag: str, until: datetime | None, target: Target) -> None:
        lock = self.fleet.pipeline.object_lock
        if lock.enabled and until is not None:
            found, current = self.objects.retention(bucket, key, None)
            plan = plan_lock(current, Retention(lock.s3_mode, until), self.clock.now())
            if found and plan is not None:
                self.objects.set_retention(bucket, key, None, plan)
        if not self.objects.set_tag(bucket, key, None, RETENTION_TAG, tag):
            log.warning("s3://%s/%s is gone: nothing to tag %s", bucket, key, tag)

    def tag_file(self, target: Target, bucket: str, key: str, tag: str, until: datetime) -> None:
        self._put(bucket, key, tag, until, target)
