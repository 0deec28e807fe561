"""What people receive about restores through SNS (plain Python; sent through the ``Notifier`` port).

Kinds: ``restore-rejected`` (why, and what to do instead), ``restore-approval`` (what waits for an
approval, who asked, who may approve and how; no secret: the approval itself is authenticated),
``restore-failed`` (stage, whether the destination was touched, how to undo), ``restore-succeeded``
(verification, the safety backup that undoes it), ``drill-failed``.
Each is an ``alerts.Alert``: an ASCII subject of at most 100 characters, a body for people, and the
same facts as JSON in the ``alert`` message attribute for machines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from backup_contracts.formatting import ascii_line, format_age, format_bytes, format_time, one_line
from backup_contracts.redaction import redact, redact_value
from backup_functions.alerts import SUBJECT_MAX, Alert, Phase
from backup_functions.ledger import RestoreItem

REJECTED = "restore-rejected"
APPROVAL = "restore-approval"
FAILED = "restore-failed"
SUCCEEDED = "restore-succeeded"
DRILL_FAILED = "drill-failed"

# What each rejection means and what to do about it (also the runbook's table).
REASON_HELP: dict[str, str] = {
    "invalid-request": "the request does not match the Restore Requested schema; fix the fields named above",
    "unknown-target": "the target is not in the fleet file; check the name with `backupctl status`",
    "unknown-destination": "the clone destination is not a target of the fleet; declare it or pick another",
    "clone-into-source": "a clone into the source target itself would overwrite it without a safety backup;"
    " request mode in-place instead",
    "engine-mismatch": "the destination uses another engine than the backup; pick a destination of the same engine",
    "cross-target-not-allowed": "the fleet file does not list the destination in the source's restore_to;"
    " add it there (reviewed change) or pick an allowed destination",
    "no-backup": "no good backup exists at or before the requested time; `backupctl history TARGET` lists them",
    "unknown-run": "no run with that id exists for the target; `backupctl history TARGET` lists run ids",
    "run-not-restorable": "that run did not end as a verified good backup; pick a succeeded run",
    "object-missing": "the backup object (that version) is no longer in S3 (expired or deleted); pick another backup",
    "no-offsite-copy": "that backup has no verified copy in the off-site vault (yet); `backupctl status` shows"
    " OFF-SITE: wait for it, restore from the primary bucket, or pick an older run that has one",
    "checksum-mismatch": "the object in S3 does not match the run's recorded size or checksum; do not use it,"
    " pick another backup and investigate the bucket",
    "authenticated-request-required": "a restore into a protected target must be submitted through the"
    " approvals URL so the requester is known: `backupctl restore` with --approvals-url or BACKUP_APPROVALS_URL"
    " (the stack output ApprovalsUrl), not `aws events put-events`",
    "approval-not-authenticated": "approvals are accepted only through the approvals URL, which AWS"
    " authenticates: an approver runs `backupctl approve RESTORE_ID`; a Restore Approved event on the bus"
    " approves nothing (the request still waits)",
    "self-approval": "the requester cannot approve their own restore; another approver listed in the fleet runs"
    " `backupctl approve RESTORE_ID` (the request still waits)",
    "not-an-approver": "the caller is not listed in the fleet's approvers of that target; ask one of them, or add"
    " the principal to approvers (a reviewed fleet change); the request still waits",
    "approval-expired": "no approval by an approver arrived in time; submit a new request",
    "not-awaiting-approval": "that restore is not waiting for an approval (unknown id or already decided)",
    "restore-id-reused": "this restore_id was already used for a different request; use a new id"
    " (the original request is unaffected)",
    # point-in-time restores of PITR targets (docs/pitr.md)
    "time-in-future": "the requested time has not happened yet; ask for a time in the past, or for latest",
    "before-first-base-backup": "recovery can only stop after a base backup's end, and the time is before the"
    " first one's; ask for a time at or after the earliest named above (`backupctl history TARGET`)",
    "wal-not-archived-yet": "the WAL archive does not reach the requested time (or the base backup's end) yet;"
    " `backupctl status` shows the archiving lag: wait for it and retry, or ask for an earlier time",
    "wal-gap": "a WAL segment between the base backup and the requested time is missing from the archive, so"
    " replay cannot pass it; a base backup taken after the gap restores to times after it (WAL ARCHIVE GAP)",
    "wal-position-unknown": "the base backup's manifest names no first and last WAL segment; pick another"
    " base backup (`backupctl history TARGET`)",
    "physical-in-place-refused": "a physical restore in place would replace the running cluster's data"
    " directory; restore a clone into a target of restore_to and switch over to it",
}


TEXT_MAX = 1024  # a reason, an error: one line in the body
WHO_MAX = 256  # a requester, an ARN, a target as requested


def _line(text: Any, limit: int = TEXT_MAX) -> str:
    """Text someone else chose (a requester, a reason, a target as requested, an agent's error), masked,
    then flattened to one line: it can never add a line of its own (a fake "approve with" line) to a message."""
    return one_line(redact(str(text)), limit)


def _clean(facts: Mapping[str, Any]) -> dict[str, Any]:
    """The machine-readable facts: no empty fields, every text masked."""
    return redact_value({k: v for k, v in facts.items() if v is not None})


def _alert(
    pipeline: str,
    kind: str,
    *,
    phase: Phase,
    headline: str,
    what: str,
    body: list[str],
    restore_id: str,
    facts: Mapping[str, Any],
) -> Alert:
    """An alert of ``kind`` about one restore: a subject of at most ``SUBJECT_MAX`` ASCII characters,
    the body's lines, and the facts for machines (pipeline, kind and restore_id first, then ``facts``)."""
    return Alert(
        kind=kind,
        phase=phase,
        subject=ascii_line(f"[{pipeline}] {headline}: {what}", SUBJECT_MAX),
        body="\n".join(body) + "\n",
        facts=_clean({"pipeline": pipeline, "kind": kind, "restore_id": restore_id, **facts}),
    )


def _source_line(source: Mapping[str, Any] | None) -> str:
    if not source:
        return "-"
    parts = [f"run {source.get('run_id')}"]
    if source.get("started_at"):
        parts.append(f"dumped {source['started_at']}")
    if source.get("bytes_stored") is not None:
        parts.append(format_bytes(int(source["bytes_stored"])))
    return ", ".join(parts)


def rejected(
    pipeline: str, *, restore_id: str, target: str, code: str, reason: str, requested_by: str, now: datetime
) -> Alert:
    meaning = REASON_HELP.get(code, "")
    target, requested_by, reason = _line(target, WHO_MAX), _line(requested_by, WHO_MAX), _line(reason)
    body = [
        f"Restore request {restore_id} for {target} was REJECTED ({code}).",
        "",
        f"Why:          {reason}",
        f"Requested by: {requested_by}",
        f"Rejected at:  {format_time(now)}",
    ]
    if meaning:
        body += ["", "What it means and what to do:", f"    {meaning}"]
    body += ["", "Nothing was dispatched; no data was touched.", "", f"Runbook: docs/runbook.md#{code}"]
    return _alert(
        pipeline,
        REJECTED,
        phase="open",
        headline="RESTORE REJECTED",
        what=f"{target} - {code}",
        body=body,
        restore_id=restore_id,
        facts={
            "target": target,
            "reason_code": code,
            "reason": reason,
            "requested_by": requested_by,
            "at": now.isoformat(),
            "next_steps": [meaning] if meaning else None,
        },
    )


def approval_needed(
    pipeline: str,
    *,
    item: RestoreItem,
    approvers: tuple[str, ...],
    expires_at: datetime,
    now: datetime,
) -> Alert:
    """The notice that a restore into a protected target waits. It carries no secret (the approval is an
    authenticated call), so anyone who reads it learns only what waits and who may approve it."""
    restore_id, target, destination, mode = item.restore_id, item.target, item.destination, item.mode
    what = f"in-place restore of {target}" if mode == "in-place" else f"clone of {target} into {destination}"
    requested_by = _line(item.requested_by, WHO_MAX)
    requester = _line(item.requested_by_arn, WHO_MAX) if item.requested_by_arn else requested_by
    body = [
        f"APPROVAL NEEDED: {what} (protected target).",
        "",
        f"Restore id:   {restore_id}",
        f"Requested by: {requester}" + (f" ({requested_by})" if requested_by != requester else ""),
        f"Reason:       {_line(item.reason)}",
        f"Backup:       {_source_line(item.source)}",
        f"Destination:  {destination} ({mode}); a safety backup of it is taken first"
        if mode == "in-place"
        else f"Destination:  {destination} ({mode})",
        f"Expires:      {format_time(expires_at)}",
        "",
        "May approve (anyone of these except the requester):",
        *[f"    {_line(pattern, WHO_MAX)}" for pattern in approvers],
        "",
        "To approve, an approver runs (it signs the call with the approver's own AWS credentials):",
        f"    backupctl approve {restore_id}",
        "with the approvals URL in --approvals-url or BACKUP_APPROVALS_URL (the stack output ApprovalsUrl).",
        "",
        "To refuse, do nothing: the request is rejected when it expires.",
    ]
    return _alert(
        pipeline,
        APPROVAL,
        phase="open",
        headline="RESTORE APPROVAL NEEDED",
        what=what,
        body=body,
        restore_id=restore_id,
        facts={
            "target": target,
            "destination": destination,
            "mode": mode,
            "requested_by": item.requested_by,
            "requested_by_arn": item.requested_by_arn,
            "approvers": list(approvers),
            "expires_at": expires_at.isoformat(),
            "at": now.isoformat(),
        },
    )


def restore_failed(pipeline: str, *, item: RestoreItem, now: datetime) -> Alert:
    restore_id, drill = item.restore_id, item.drill
    target, destination = item.target, item.destination
    stage = item.stage or "unknown stage"
    touched = bool(item.destination_touched)
    kind = DRILL_FAILED if drill else FAILED
    headline = "RESTORE DRILL FAILED" if drill else "RESTORE FAILED"
    body = [
        f"{headline}: {restore_id} ({target} -> {destination}, {item.mode}) failed at stage {stage}.",
        "",
        f"Error:        {redact(ascii_line(item.error or '-', 500))}",
        f"Backup:       {_source_line(item.source)}",
        f"Destination touched: {'YES - it may be half-restored' if touched else 'no'}",
    ]
    if item.safety_backup_run_id:
        body.append(f"Safety backup: run {item.safety_backup_run_id} of {destination} (taken before the restore)")
    if item.stderr_tail:
        body += ["", "Error output (last lines, redacted):"]
        body += [f"    {one_line(line, TEXT_MAX)}" for line in redact(item.stderr_tail).splitlines()[-20:]]
    steps: list[str] = [f"backupctl restore-status {restore_id}"]
    if touched and item.mode == "in-place" and item.safety_backup_run_id:
        steps.append(
            f"undo: backupctl restore {destination} --run {item.safety_backup_run_id} --in-place"
            " --reason 'undo failed restore'"
        )
    elif touched:
        steps.append(f"the destination {destination} is in an unknown state: restore it again or drop it")
    if drill:
        steps.append(f"backupctl history {target}  (is the latest good backup restorable?)")
    body += ["", "Next step:", *[f"    {s}" for s in steps], "", f"Alert time: {format_time(now)}"]
    return _alert(
        pipeline,
        kind,
        phase="open",
        headline=headline,
        what=f"{target} -> {destination} at {stage}",
        body=body,
        restore_id=restore_id,
        facts={
            "target": target,
            "destination": destination,
            "agent": item.agent,
            "mode": item.mode,
            "stage": stage,
            "error": redact(item.error or "")[:500] or None,
            "destination_touched": touched,
            "safety_backup_run_id": item.safety_backup_run_id,
            "at": now.isoformat(),
            "next_steps": steps,
        },
    )


def restore_succeeded(pipeline: str, *, item: RestoreItem, now: datetime) -> Alert:
    restore_id, target, destination, mode = item.restore_id, item.target, item.destination, item.mode
    verification = item.verification or {}
    body = [
        f"Restore {restore_id} SUCCEEDED: {target} -> {destination} ({mode}).",
        "",
        f"Backup:       {_source_line(item.source)}",
        f"Duration:     {item.duration_s} s",
        f"Verification: {json.dumps(verification, sort_keys=True, default=str)[:1500]}",
    ]
    if item.safety_backup_run_id:
        body += [
            f"Safety backup: run {item.safety_backup_run_id} of {destination}. To undo this restore:",
            f"    backupctl restore {destination} --run {item.safety_backup_run_id} --in-place --reason 'undo'",
        ]
    body += ["", f"Time: {format_time(now)}"]
    return _alert(
        pipeline,
        SUCCEEDED,
        phase="resolved",
        headline="RESTORE SUCCEEDED",
        what=f"{target} -> {destination} ({mode})",
        body=body,
        restore_id=restore_id,
        facts={
            "target": target,
            "destination": destination,
            "mode": mode,
            "duration_s": item.duration_s,
            "safety_backup_run_id": item.safety_backup_run_id,
            "verification": verification or None,
            "at": now.isoformat(),
        },
    )


RTO_BREACHED = "rto-breached"


def drill_rto_breached(pipeline: str, *, item: RestoreItem, rto_s: float, objective_s: float, now: datetime) -> Alert:
    """A drill that restored fine but slower than its target's ``rto``: restoring for real would miss it too."""
    restore_id, target, destination = item.restore_id, item.target, item.destination
    measured, objective = format_age(timedelta(seconds=rto_s)), format_age(timedelta(seconds=objective_s))
    body = [
        f"Restore drill {restore_id} of {target} succeeded but took {measured}; the RTO objective is {objective}.",
        "",
        f"Measured:  {round(rto_s)} s from the drill's dispatch to its verified end (queue wait included);"
        f" the restore itself took {item.duration_s} s.",
        f"Backup:    {_source_line(item.source)}",
        f"Scratch:   {destination}",
        "",
        "What to do: a long queue wait means the agent was busy or down (backupctl status); a long restore means",
        f"the backup has outgrown the objective (a faster host or engine settings, or a realistic rto for {target}",
        "in fleet.yaml).",
        "",
        f"Time: {format_time(now)}",
    ]
    return _alert(
        pipeline,
        RTO_BREACHED,
        phase="open",
        headline="RTO BREACHED",
        what=f"drill of {target} took {measured} (objective {objective})",
        body=body,
        restore_id=restore_id,
        facts={
            "target": target,
            "destination": destination,
            "rto_s": round(rto_s, 3),
            "rto_objective_s": objective_s,
            "restore_duration_s": item.duration_s,
            "at": now.isoformat(),
        },
    )
