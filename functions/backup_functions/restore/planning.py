"""Planning a restore: which backup is read, where it goes, and whether the request may go ahead.

``Planner.plan`` checks a ``Restore Requested`` against the fleet (the target and destination exist,
share an engine, a clone goes only where the target's ``restore_to`` allows, a restore into a protected
target was requested by a caller AWS authenticated), the ledger (the run the
selector names: the latest good backup, the latest at or before a time, or a run id that ended as a
verified good backup) and S3 (``check_object``: that object version exists and its size and every
recorded checksum match the run). ``Planner.drill_plan`` does the same for a scheduled drill (the
target's latest good backup, or with ``drill.source: offsite`` its latest verified off-site copy, into its
drill destination) and ``Planner.approved_plan`` for an approved
request (the very run the approver saw, its object checked again). A request's ``source: offsite`` reads the
run's verified copy in the vault; a primary object that is gone or does not match falls back to that copy
(``located``). The first check that fails raises a
``Rejection`` whose code is one of ``messages.REASON_HELP``; nothing is written.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.events import RestoreRequested
from backup_contracts.fleet import Agent, Fleet, Target
from backup_contracts.naming import restore_facts
from backup_functions.ledger import RestoreItem, RunRecord
from backup_functions.ledger.wal_items import WalFile
from backup_functions.restore.context import Context
from backup_functions.restore.pitr import END, IMMEDIATE, TIME, PitrPlanner
from backup_functions.restore.rejection import Rejection
from backup_functions.verification import ClaimedObject, compare_head

SUGGESTIONS_MAX = 3
PRIMARY, OFFSITE = "primary", "offsite"  # where a restore reads its backup (Restore Requested ``source``)


def _close_names(name: str, fleet: Fleet) -> str:
    """At most three of the fleet's names that look like ``name`` (a typo), never the fleet's list: a
    rejection of a fleet of 7,000 targets once listed all of them, too long for SNS."""
    close = difflib.get_close_matches(name, [t.name for _, t in fleet.targets()], n=SUGGESTIONS_MAX, cutoff=0.8)
    return f"; did you mean {' or '.join(close)}?" if close else "; `backupctl status` lists its targets"


@dataclass(frozen=True)
class Plan:
    """A validated restore: the backup to read and where it goes."""

    kind: str  # restore | drill
    target: Target
    destination: Target
    destination_agent: Agent
    mode: str  # clone | in-place | drill
    source: dict[str, Any]  # the run's object facts (see source_from_run); a PITR target's: its ``wal`` too
    requires_approval: bool
    wal_files: tuple[WalFile, ...] = field(default=())  # a PITR target's: the WAL its index lists (pitr.py)


def source_from_run(run: RunRecord) -> dict[str, Any]:
    """The facts of a run record that a restore reads and verifies its object against (kept on the
    request as stored text, so the approval re-checks exactly what was announced)."""
    return {
        "run_id": run.run_id,
        "target": run.target,
        "bucket": run.bucket,
        "key": run.key,
        "version_id": run.version_id,
        "sha256": run.sha256,
        "bytes_stored": run.bytes_stored,
        "engine": run.engine,
        "format": run.format,
        "compression": run.compression,
        "s3_checksum_sha256": run.s3_checksum_sha256,
        "started_at": keys.iso(run.started_at),
        "finished_at": keys.iso(run.finished_at) if run.finished_at else None,
    }


def offsite_source(run: RunRecord, *, fallback_from: str | None = None) -> dict[str, Any]:
    """The facts of a run's verified off-site copy: the same object, in the vault."""
    if run.offsite_bucket is None:
        raise Rejection(
            "no-offsite-copy",
            f"run {run.run_id} of {run.target} has no verified off-site copy (yet): `backupctl status` shows"
            " OFF-SITE, `backupctl history` the runs; restore from the primary bucket (leave source out) or"
            " name an older run that has one",
        )
    source = source_from_run(run) | {
        "bucket": run.offsite_bucket,
        "version_id": run.offsite_version_id,
        "location": OFFSITE,
    }
    if fallback_from is not None:
        source["fallback_from"] = fallback_from
    return source


class Planner:
    """Turns a request, an approved request or a due drill into a ``Plan`` after checking it against the
    fleet, the ledger and S3."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.pitr = PitrPlanner(context)

    def plan(self, request: RestoreRequested, *, authenticated: bool) -> Plan:
        """Validate a request against the fleet, the ledger and S3; raise Rejection saying why.

        ``authenticated``: the request came through the approvals URL (its requester is known)."""
        target_agent, target = self.target(request.target, "unknown-target")
        destination_name = request.destination or request.target
        if request.mode == "clone" and destination_name == request.target:
            raise Rejection(
                "clone-into-source",
                f"a clone of {request.target} into itself would overwrite it without a safety backup;"
                " send mode in-place to restore the target itself",
            )
        dest_agent, destination = (
            (target_agent, target)
            if destination_name == request.target
            else self.target(destination_name, "unknown-destination")
        )
        if destination.engine != target.engine:
            raise Rejection(
                "engine-mismatch",
                f"destination {destination.name} uses engine {destination.engine}, the backup of"
                f" {target.name} is {target.engine}",
            )
        if request.mode == "clone" and destination.name not in target.restore_to:
            allowed = ", ".join(target.restore_to) or "none"
            raise Rejection(
                "cross-target-not-allowed",
                f"the fleet does not allow restoring {target.name} into {destination.name} (its restore_to: {allowed})",
            )
        if destination.protected and not authenticated and not request.dry_run:
            raise Rejection(
                "authenticated-request-required",
                f"{destination.name} is protected: a restore into it needs an approval by someone other than the"
                " requester, so the requester must be known. Submit it with `backupctl restore` and the approvals"
                " URL (--approvals-url or BACKUP_APPROVALS_URL; the stack output ApprovalsUrl), which AWS"
                " authenticates, instead of putting the event on the bus",
            )
        if target.pitr and request.mode == "in-place":
            raise Rejection(
                "physical-in-place-refused",
                f"{target.name} is a physical (PITR) target: an in-place restore would replace its running"
                " cluster's data directory; restore a clone (mode clone, a destination in its restore_to) and"
                " switch over to it",
            )
        run = (
            self.pitr.base_for(target, request.backup.at)
            if target.pitr and request.backup.at
            else self._resolve(request)
        )
        if run.engine and run.engine != destination.engine:
            raise Rejection(
                "engine-mismatch",
                f"run {run.run_id} was made by engine {run.engine}, destination {destination.name} is"
                f" {destination.engine}",
            )
        if target.pitr:
            selector = request.backup
            how = TIME if selector.at else IMMEDIATE if selector.run_id else END
            source, files = self._with_wal(target, run, request.source, at=selector.at, how=how)
        else:
            source, files = self.located(run, request.source), []
        return Plan(
            kind="restore",
            target=target,
            destination=destination,
            destination_agent=dest_agent,
            mode=request.mode,
            source=source,
            requires_approval=destination.protected,
            wal_files=tuple(files),
        )

    def drill_plan(self, target: Target, destination_name: str) -> Plan:
        """The plan of a drill of ``target``: its latest good backup, checked in S3, restored into
        ``destination_name`` (its drill destination); raise Rejection saying why not."""
        dest_agent, destination = self.target(destination_name, "unknown-destination")
        wanted = target.drill.source if target.drill is not None else PRIMARY
        run = self.context.ledger.runs.latest_good(target.name, with_offsite_copy=wanted == OFFSITE)
        if run is None:
            copy = " with a verified off-site copy" if wanted == OFFSITE else ""
            raise Rejection("no-backup", f"target {target.name} has no good backup{copy} to drill")
        if target.pitr:  # the latest base backup and all the WAL after it, as a restore of latest
            source, files = self._with_wal(target, run, wanted, at=None, how=END)
        else:
            source, files = self.located(run, wanted), []
        return Plan(
            kind="drill",
            target=target,
            destination=destination,
            destination_agent=dest_agent,
            mode="drill",
            source=source,
            requires_approval=False,
            wal_files=tuple(files),
        )

    def approved_plan(self, item: RestoreItem) -> Plan:
        """The plan that was announced for approval in ``item``: the SAME backup run (a newer "latest"
        backup made while waiting is not what the approver saw), with its object checked again (it may
        have expired while waiting)."""
        _, target = self.target(item.target, "unknown-target")
        dest_agent, destination = self.target(str(item.destination), "unknown-destination")
        source = dict(item.source or {})
        source["manifest_facts"] = self.check_object(source)
        # the WAL the approver saw (through the same last file), read again: it may have expired while waiting
        files = self.pitr.listed(target.name, source["wal"]) if source.get("wal") else []
        return Plan(
            kind="restore",
            target=target,
            destination=destination,
            destination_agent=dest_agent,
            mode=str(item.mode),
            source=source,
            requires_approval=True,
            wal_files=tuple(files),
        )

    def _with_wal(
        self, target: Target, run: RunRecord, wanted: str, *, at: datetime | None, how: str
    ) -> tuple[dict[str, Any], list[WalFile]]:
        """A PITR target's source (``located``) with the WAL to replay after it (``pitr``). To the end of the
        archive, a base backup whose own WAL is not archived through its end yet (one that just finished)
        gives way to the one before it, which replays to the same end."""
        source = self.located(run, wanted)
        try:
            source["wal"], files = self.pitr.summary(target, run, source.get("manifest_facts") or {}, at=at, how=how)
        except Rejection as rejection:
            if how != END or rejection.code != "wal-not-archived-yet":
                raise
            before = run.started_at - timedelta(microseconds=1)
            older = self.context.ledger.runs.latest_good(
                target.name, at_or_before=before, with_offsite_copy=wanted == OFFSITE
            )
            if older is None:
                raise
            source = self.located(older, wanted)
            try:
                source["wal"], files = self.pitr.summary(
                    target, older, source.get("manifest_facts") or {}, at=at, how=how
                )
            except Rejection:
                raise rejection from None
        return source, files

    def target(self, name: str, code: str) -> tuple[Agent, Target]:
        """The fleet's target ``name`` and its agent; a Rejection with ``code`` (``unknown-target`` or
        ``unknown-destination``) when the fleet has no such target."""
        fleet = self.context.fleet
        try:
            return fleet.target(name)
        except KeyError:
            role = "target" if code == "unknown-target" else "destination"
            raise Rejection(code, f"{role} {name!r} is not in the fleet{_close_names(name, fleet)}") from None

    def _resolve(self, request: RestoreRequested) -> RunRecord:
        selector = request.backup
        runs = self.context.ledger.runs
        if selector.run_id is not None:
            run = runs.by_id(request.target, selector.run_id)
            if run is None:
                raise Rejection("unknown-run", f"target {request.target} has no run {selector.run_id}")
            if not run.good:
                raise Rejection(
                    "run-not-restorable",
                    f"run {selector.run_id} of {request.target} is {run.state}, not a verified good backup",
                )
            return run
        offsite = request.source == OFFSITE
        run = runs.latest_good(request.target, at_or_before=selector.at, with_offsite_copy=offsite)
        if run is None:
            when = f"at or before {selector.at.isoformat()}" if selector.at else "at all"
            copy = " with a verified off-site copy" if offsite else ""
            raise Rejection("no-backup", f"target {request.target} has no good backup{copy} {when}")
        return run

    def located(self, run: RunRecord, wanted: str) -> dict[str, Any]:
        """The run's object facts where the restore reads it, checked there (``check_object``): with
        ``offsite``, its verified copy in the vault; otherwise the primary object, or the vault's copy
        when the primary one is gone or does not match (``fallback_from`` says why)."""
        if wanted == OFFSITE:
            source = offsite_source(run)
            source["manifest_facts"] = self.check_object(source)
            return source
        source = source_from_run(run)
        try:
            source["manifest_facts"] = self.check_object(source)
        except Rejection as primary:
            if primary.code not in ("object-missing", "checksum-mismatch") or run.offsite_bucket is None:
                raise
            source = offsite_source(run, fallback_from=primary.reason)
            try:
                source["manifest_facts"] = self.check_object(source)
            except Rejection as vault:
                raise Rejection(vault.code, f"{primary.reason}; and its off-site copy: {vault.reason}") from None
        return source

    def check_object(self, source: Mapping[str, Any]) -> dict[str, Any]:
        """The object exists (that version), its size and every recorded checksum match the run.

        Returns the facts of the backup's manifest (e.g. table counts) the restore is verified against.
        """
        objects = self.context.objects
        bucket, key, version = source.get("bucket"), source.get("key"), source.get("version_id")
        where = f"s3://{bucket}/{key}" + (f" (version {version})" if version else "")
        if not bucket or not key or not source.get("sha256") or not source.get("bytes_stored"):
            raise Rejection("object-missing", f"run {source.get('run_id')} has no object recorded in the ledger")
        head = objects.head(str(bucket), str(key), str(version) if version else None)
        if head is None:
            raise Rejection("object-missing", f"{where} does not exist (expired, deleted or never completed)")
        claimed = ClaimedObject(
            str(source["run_id"]), int(source["bytes_stored"]), str(source["sha256"]), source.get("s3_checksum_sha256")
        )
        problems, _ = compare_head(head, claimed)
        manifest_facts: dict[str, Any] = {}
        if not problems:
            manifest = objects.manifest(str(bucket), str(key))
            if manifest is not None:
                if manifest.get("sha256") and manifest["sha256"] != source["sha256"]:
                    problems.append(
                        f"the manifest's sha256 is {manifest['sha256']}, the run recorded {source['sha256']}"
                    )
                if manifest.get("bytes_stored") not in (None, source["bytes_stored"]):
                    problems.append(
                        f"the manifest's size is {manifest['bytes_stored']}, the run recorded {source['bytes_stored']}"
                    )
                manifest_facts = restore_facts(manifest)
        if problems:
            raise Rejection("checksum-mismatch", f"{where}: " + "; ".join(problems))
        return manifest_facts
