"""What people receive about restores through SNS (plain Python; sent through the ``Notifier`` port).

Kinds: ``restore-rejected`` (why, and what to do instead), ``restore-approval`` (the one-time token
and how to use it), ``restore-failed`` (stage, whether the destination was touched, how to undo),
``restore-succeeded`` (verification, the safety backup that undoes it), ``drill-failed``.
Each is an ``alerts.Alert``: an ASCII subject of at most 100 characters, a body for people, and the
same facts as JSON in the ``alert`` message attribute for machines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from backup_contracts.formatting import ascii_line, format_bytes, format_time
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
    "checksum-mismatch": "the object in S3 does not match the run's recorded size or checksum; do not use it,"
    " pick another backup and investigate the bucket",
    "approval-invalid": "the approval token did not match; the request is closed, submit a new one",
    "approval-expired": "no valid approval arrived in time; submit a new request",
    "not-awaiting-approval": "that restore is not waiting for an approval (unknown id or already decided)",
    "restore-id-reused": "this restore_id was already used for a different request; use a new id"
    " (the original request is unaffected)",
}


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
    body = [
        f"Restore request {restore_id} for {target} was REJECTED ({code}).",
        "",
        f"Why:          {redact(reason)}",
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
            "reason": redact(reason),
            "requested_by": requested_by,
            "at": now.isoformat(),
            "next_steps": [meaning] if meaning else None,
        },
    )


def approval_needed(
    pipeline: str,
    *,
    item: RestoreItem,
    token: str,
    expires_at: datetime,
    bus_name: str,
    now: datetime,
) -> Alert:
    restore_id, target, destination, mode = item.restore_id, item.target, item.destination, item.mode
    detail = json.dumps({"restore_id": restore_id, "approval_token": token, "approved_by": "YOUR NAME"})
    entry = json.dumps(
        [{"Source": "backup.requests", "DetailType": "Restore Approved", "Detail": detail, "EventBusName": bus_name}]
    )
    what = f"in-place restore of {target}" if mode == "in-place" else f"clone of {target} into {destination}"
    body = [
        f"APPROVAL NEEDED: {what} (protected target).",
        "",
        f"Restore id:   {restore_id}",
        f"Requested by: {item.requested_by}",
        f"Reason:       {redact(item.reason)}",
        f"Backup:       {_source_line(item.source)}",
        f"Destination:  {destination} ({mode}); a safety backup of it is taken first"
        if mode == "in-place"
        else f"Destination:  {destination} ({mode})",
        f"Expires:      {format_time(expires_at)}",
        "",
        f"One-time approval token: {token}",
        "",
        "To approve (a second person should), run:",
        f"    backupctl approve {restore_id} {token}",
        "or:",
        f"    aws events put-events --entries '{entry}'",
        "",
        "To refuse, do nothing: the request is rejected when the token expires.",
    ]
    return _alert(
        pipeline,
        APPROVAL,
        phase="open",
        headline="RESTORE APPROVAL NEEDED",
        what=what,
        body=body,
        restore_id=restore_id,
        # The token is deliberately NOT in the machine-readable facts (those may be logged or archived).
        facts={
            "target": target,
            "destination": destination,
            "mode": mode,
            "requested_by": item.requested_by,
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
        body += [f"    {line}" for line in redact(item.stderr_tail).splitlines()[-20:]]
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
