"""Point-in-time planning for PITR targets (``engine: postgresql-physical``; docs/pitr.md).

A restore of a PITR target reads a base backup and replays archived WAL after it. Which base backup and
how much WAL depends on the selector:

- ``at: TIME``: the newest good base backup whose dump **finished** at or before TIME (recovery cannot stop
  inside a base backup), and every archived file from its first segment through the first one archived
  after TIME (the segment that holds TIME's next commit, where recovery stops) — ``recovery_target`` time;
- ``latest`` (and drills): the newest good base backup and all the WAL contiguous after it — ``end``;
- ``run_id``: that base backup, its own WAL only (first through last segment) — ``immediate``.

The walk (``walk``) follows the archive in file-name order (timeline, then segment) from the base backup's
first segment: the next segment extends it, so does the first segment of a newer timeline that begins at or
before the next one (a promotion; its ``.history`` file is listed too); any other later segment means the
next one is missing. The outcome is a small summary kept in the plan's ``source["wal"]`` (what the request
item stores and an approver saw); the files themselves are listed again from the ledger, through exactly the
summary's ``last_file``, when the index is written (``wal_index``). Every refusal is a ``Rejection`` with a
code of ``messages.REASON_HELP``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.fleet import Target
from backup_contracts.formatting import format_age
from backup_contracts.wal import (
    DEFAULT_SEGMENT_SIZE,
    Segment,
    WalNameError,
    history_timeline,
    is_segment,
    parse_segment,
)
from backup_functions.ledger import RunRecord
from backup_functions.ledger.wal_items import WalFile
from backup_functions.ledger.wal_order import continues
from backup_functions.restore.context import Context
from backup_functions.restore.rejection import Rejection

TIME, END, IMMEDIATE = "time", "end", "immediate"  # WalReplay.recovery_target
BASE_LOOKBACK = 16  # base backups that started before TIME but finished after it, skipped at most
STATUS_HINT = "`backupctl status` shows the archiving lag"


@dataclass
class Walked:
    """Where a walk over the archive stopped: the files to list, the last segment, and why it stopped."""

    files: list[WalFile] = field(default_factory=list)
    last: Segment | None = None
    last_file: str | None = None
    missing: str | None = None  # the segment that is missing while a later one is archived
    reached: bool = False  # the stop condition held


Stop = Callable[[Segment, WalFile], bool]


def walk(files: Iterable[WalFile], start_file: str, stop: Stop | None, size: int = DEFAULT_SEGMENT_SIZE) -> Walked:
    """Follow ``files`` (in file-name order, from ``start_file``) while each segment extends the previous
    one; stop after the segment for which ``stop`` holds (None: at the archive's end or its first gap)."""
    start = parse_segment(start_file, size)
    out = Walked()
    histories: list[WalFile] = []
    for row in files:
        if history_timeline(row.file) is not None:
            histories.append(row)
            continue
        if not is_segment(row.file):
            continue  # .partial and .backup files are never replayed
        segment = parse_segment(row.file, size)
        expected = start if out.last is None else out.last.next()
        follows = segment == start if out.last is None else continues(out.last, segment)
        if not follows:
            if out.last is not None and segment <= out.last:
                continue
            out.missing = expected.name
            break
        out.files += histories
        histories = []
        out.files.append(row)
        out.last, out.last_file = segment, row.file
        if stop is not None and stop(segment, row):
            out.reached = True
            break
    return out


def wal_facts(facts: Mapping[str, Any], run: RunRecord) -> tuple[str, str, int]:
    """(first segment, last segment, segment size) of a base backup, from its manifest's validator facts."""
    start, end = facts.get("start_file"), facts.get("end_file")
    size = int(facts.get("wal_segment_size") or DEFAULT_SEGMENT_SIZE)
    try:
        if not isinstance(start, str) or not isinstance(end, str):
            raise WalNameError("no start_file/end_file")
        parse_segment(start, size)
        parse_segment(end, size)
    except (WalNameError, ValueError):
        raise Rejection(
            "wal-position-unknown",
            f"base backup {run.run_id} of {run.target} records no first and last WAL segment in its manifest"
            f" (start_file={start!r}, end_file={end!r}), so the WAL to replay after it is unknown; pick another"
            " base backup (`backupctl history`)",
        ) from None
    return start[:24], end[:24], size


class PitrPlanner:
    """Picks the base backup and the WAL of a PITR target's restore (see the module's docstring)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    # ------------------------------------------------------------------ which base backup
    def base_for(self, target: Target, at: datetime) -> RunRecord:
        """The newest good base backup that finished at or before ``at``; a Rejection saying why none."""
        now = self.context.clock.now()
        if at > now:
            raise Rejection(
                "time-in-future",
                f"{keys.iso(at)} is in the future (now {keys.iso(now)}): no WAL can reach it; ask for a time in"
                f" the past, or for latest",
            )
        runs = self.context.ledger.runs
        bound = at
        for _ in range(BASE_LOOKBACK):
            run = runs.latest_good(target.name, at_or_before=bound)
            if run is None:
                break
            if run.finished_at is not None and run.finished_at <= at:
                return run
            bound = run.started_at - timedelta(microseconds=1)
        earliest = self._earliest_end(target)
        if earliest is None:
            raise Rejection("no-backup", f"target {target.name} has no good base backup at all")
        raise Rejection(
            "before-first-base-backup",
            f"{keys.iso(at)} is before the end of {target.name}'s first restorable base backup: the earliest"
            f" time it can be restored to is {keys.iso(earliest)} (`backupctl history {target.name}`)",
        )

    def _earliest_end(self, target: Target) -> datetime | None:
        ends = [r.finished_at for r in self.context.ledger.runs.newest(target.name) if r.good and r.finished_at]
        return min(ends) if ends else None

    # ------------------------------------------------------------------ which WAL
    def summary(
        self, target: Target, run: RunRecord, facts: Mapping[str, Any], *, at: datetime | None, how: str
    ) -> tuple[dict[str, Any], list[WalFile]]:
        """The WAL of a restore of ``run`` (``how``: time with ``at``, end or immediate), checked against the
        archive: the summary kept in the plan's source (``source["wal"]``) and the files it names."""
        start_file, end_file, size = wal_facts(facts, run)
        end = parse_segment(end_file, size)
        stop: Stop | None
        if how == TIME:
            assert at is not None  # noqa: S101 - a time target always has its time

            def stop(segment: Segment, row: WalFile) -> bool:
                return segment.number >= end.number and row.archived_at > at

        elif how == IMMEDIATE:

            def stop(segment: Segment, row: WalFile) -> bool:
                return segment.number >= end.number

        else:
            stop = None
        walked = walk(self.context.ledger.wal.files(target.name, start_file), start_file, stop, size)
        consistent = walked.last is not None and walked.last.number >= end.number
        if not walked.reached and not (how == END and consistent):
            self._refuse(target, run, start_file, end_file, walked, at=at)
        files = self._with_base_history(target.name, start_file, walked.files, size)
        summary = {
            "recovery_target": how,
            "recovery_target_time": keys.iso(at) if how == TIME and at is not None else None,
            "timeline": parse_segment(start_file, size).timeline,
            "start_file": start_file,
            "end_file": end_file,
            "last_file": walked.last_file,
            "files": len(files),
            "segment_size": size,
        }
        return summary, files

    def _with_base_history(self, target: str, start_file: str, files: list[WalFile], size: int) -> list[WalFile]:
        """A base backup on a timeline after the first needs that timeline's ``.history`` file too (it sorts
        before the timeline's segments, so the walk from the first segment does not see it)."""
        timeline = parse_segment(start_file, size).timeline
        history = self.context.ledger.wal.file(target, f"{timeline:08X}.history") if timeline > 1 else None
        return ([history] if history is not None else []) + files

    def listed(self, target: str, summary: Mapping[str, Any]) -> list[WalFile]:
        """The files a summary names, read again from the ledger (the index lists exactly these): from its
        ``start_file`` through its ``last_file``; a Rejection when the archive no longer has all of them."""
        start_file, last_file = str(summary["start_file"]), str(summary["last_file"])
        size = int(summary.get("segment_size") or DEFAULT_SEGMENT_SIZE)

        def stop(segment: Segment, row: WalFile) -> bool:
            return row.file == last_file

        walked = walk(self.context.ledger.wal.files(target, start_file), start_file, stop, size)
        files = self._with_base_history(target, start_file, walked.files, size)
        if not walked.reached or len(files) != int(summary["files"]):
            missing = walked.missing or (walked.last.next().name if walked.last else start_file)
            raise Rejection(
                "wal-gap",
                f"the WAL archive of {target} no longer holds every file from {start_file} through {last_file}"
                f" the plan named (first missing: {missing}; expired or never recorded); request the restore again",
            )
        return files

    def _refuse(
        self,
        target: Target,
        run: RunRecord,
        start_file: str,
        end_file: str,
        walked: Walked,
        *,
        at: datetime | None,
    ) -> None:
        name = target.name
        if walked.missing is not None:
            newest = self.context.ledger.runs.latest_good(name)
            later = (
                f"; the newer base backup {newest.run_id} (finished {keys.iso(newest.finished_at)}) does not need"
                f" it: request a time after that"
                if newest is not None and newest.run_id != run.run_id and newest.finished_at
                else "; a base backup taken after the gap restores to times after it"
            )
            raise Rejection(
                "wal-gap",
                f"WAL segment {walked.missing} of {name} is missing from the archive between base backup"
                f" {run.run_id} (from {start_file}) and {'the requested time' if at else 'its end'}{later}",
            )
        archive = self.context.ledger.wal.archive(name)
        newest_at = archive.newest_archived_at if archive else None
        newest_file = archive.newest_file if archive else None
        if at is None:
            raise Rejection(
                "wal-not-archived-yet",
                f"the WAL of base backup {run.run_id} of {name} is not archived through its last segment"
                f" {end_file} yet (newest archived: {newest_file or 'none'}); wait for it ({STATUS_HINT})",
            )
        behind = f", {format_age(at - newest_at)} before the requested time" if newest_at and newest_at < at else ""
        raise Rejection(
            "wal-not-archived-yet",
            f"the WAL archive of {name} does not reach {keys.iso(at)} yet: the newest archived file is"
            f" {newest_file or 'none'}"
            + (f", archived {keys.iso(newest_at)}{behind}" if newest_at else "")
            + f"; wait and retry ({STATUS_HINT})",
        )
