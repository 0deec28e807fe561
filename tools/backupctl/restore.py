"""Restore commands: ``restore`` (request a restore), ``approve`` (approve one into a protected target)
and ``restore-status`` (read the request's ledger item). See docs/runbook.md.

    backupctl [--approvals-url URL] restore TARGET [--at TIME | --run RUN_ID] (--to OTHER | --in-place)
              [--dry-run] --reason ...
    backupctl [--approvals-url URL] approve RESTORE_ID
    backupctl restore-status RESTORE_ID

With an approvals URL (``--approvals-url`` / ``BACKUP_APPROVALS_URL``), ``restore`` and ``approve`` call it
signed with your AWS credentials (``approvals_client``): AWS tells the coordinator who you are, and the
coordinator answers at once. Without one, ``restore`` puts a ``Restore Requested`` on the bus, which the
coordinator accepts only for targets that are not protected.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from backup_contracts.approvals_url import APPROVALS_PATH, REQUESTS_PATH, Answer, ApprovalCall
from backup_contracts.eventbus import put_events
from backup_contracts.events import Contract, RestoreRequested
from backup_contracts.validation import describe_validation_error
from backup_functions.ledger import RestoreItem
from backupctl import approvals_client
from backupctl.backup_now import default_requester
from backupctl.context import Context, UsageError
from backupctl.render import to_json


def parse_time(text: str) -> datetime:
    """ISO-8601 with a zone (``2026-11-22T09:00:00Z`` or ``+01:00``); a naive time is refused."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {text!r} is not an ISO-8601 time. Fix: e.g. --at 2026-11-22T09:00:00Z") from None
    if moment.tzinfo is None:
        raise UsageError(f"--at {text!r} has no time zone. Fix: append Z (UTC) or an offset like +01:00")
    return moment


def build_restore_request(args: argparse.Namespace) -> RestoreRequested:
    if args.at and args.run:
        raise UsageError("choose one of --at and --run")
    if not args.to and not args.in_place:
        raise UsageError("say where to restore: --to OTHER_TARGET (a clone) or --in-place (over the target itself)")
    selector: dict[str, Any] = {"latest": True}
    if args.at:
        selector = {"at": parse_time(args.at)}
    elif args.run:
        selector = {"run_id": args.run}
    try:
        return RestoreRequested(
            restore_id=args.restore_id or f"r-{datetime.now().astimezone():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}",
            target=args.target,
            backup=selector,
            destination=None if args.in_place else args.to,
            mode="in-place" if args.in_place else "clone",
            requested_by=args.requested_by or default_requester(),
            reason=args.reason,
            dry_run=args.dry_run,
            source="offsite" if args.from_offsite else "primary",
        )
    except ValidationError as exc:
        raise UsageError(f"invalid restore request: {describe_validation_error(exc, root='request')}") from None


def put(events: Any, event: Contract, bus: str) -> str:
    """PutEvents one entry; returns the EventBridge event id (``PutEventsError`` when refused)."""
    return put_events(events, [event], bus)[0]


HANDLED = ("awaiting-approval", "dispatched", "validated", "duplicate")  # answers that are no failure


def run_restore(args: argparse.Namespace, ctx: Context) -> int:
    request = build_restore_request(args)
    ctx.check_target(request.target)
    if ctx.approvals_url:
        body = request.model_dump(mode="json", exclude={"requested_by"}, exclude_none=True)
        return _answered(ctx, "restore request", *_call(ctx, REQUESTS_PATH, body))
    destination = request.destination or request.target
    if ctx.is_protected(destination) and not request.dry_run:
        raise UsageError(
            f"{destination} is protected: a restore into it must go through the approvals URL, so that AWS says"
            " who asks. Fix: pass --approvals-url or set BACKUP_APPROVALS_URL (the stack output ApprovalsUrl)"
        )
    event_id = put(ctx.client("events"), request, ctx.bus_name)
    if ctx.json:
        sys.stdout.write(to_json({"restore_id": request.restore_id, "event_id": event_id, "bus": ctx.bus_name}))
        return 0
    where = f"in place over {request.target}" if request.mode == "in-place" else f"into {request.destination}"
    what = "Dry run of a restore" if request.dry_run else "Restore"
    sys.stdout.write(
        f"{what} of {request.target} {where} requested: restore id {request.restore_id}"
        f" (event {event_id} on {ctx.bus_name}).\n"
        f"Follow it with: backupctl restore-status {request.restore_id}\n"
    )
    if request.mode == "in-place":
        sys.stdout.write("A safety backup of the target is taken first.\n")
    return 0


def _call(ctx: Context, path: str, body: dict[str, Any]) -> tuple[int, Answer]:
    assert ctx.approvals_url is not None  # noqa: S101 - callers check
    return approvals_client.call(ctx.aws_session(), ctx.approvals_url, path, body, region=ctx.region)


def _answered(ctx: Context, what: str, status: int, answer: Answer) -> int:
    """Print what the coordinator answered; exit 0 when it took the call, 1 when it refused it."""
    ok = status == 200 and answer.action in HANDLED
    if ctx.json:
        sys.stdout.write(to_json({"status": status, **answer.model_dump(exclude_none=True)}))
        return 0 if ok else 1
    code = f" ({answer.reason_code})" if answer.reason_code else ""
    lines = [f"{what.capitalize()} {answer.restore_id or ''} by {answer.caller}: {answer.action.upper()}{code}"]
    if answer.detail:
        lines.append(f"  {answer.detail}")
    if answer.restore_id:
        lines.append(f"Follow it with: backupctl restore-status {answer.restore_id}")
    (sys.stdout if ok else sys.stderr).write("\n".join(lines) + "\n")
    return 0 if ok else 1


def run_approve(args: argparse.Namespace, ctx: Context) -> int:
    if not ctx.approvals_url:
        raise UsageError(
            "approvals go through the approvals URL, signed with your AWS credentials."
            " Fix: pass --approvals-url or set BACKUP_APPROVALS_URL (the stack output ApprovalsUrl)"
        )
    try:
        call = ApprovalCall(restore_id=args.restore_id)
    except ValidationError as exc:
        raise UsageError(f"invalid approval: {describe_validation_error(exc, root='request')}") from None
    return _answered(ctx, "approval of", *_call(ctx, APPROVALS_PATH, call.model_dump()))


_SHOWN = (
    "state",
    "kind",
    "target",
    "destination",
    "mode",
    "agent",
    "requested_by",
    "requested_by_arn",
    "reason",
    "dry_run",
    "source_run_id",
    "reason_code",
    "rejection",
    "approval_deadline",
    "approved_by",
    "deadline",
    "stage",
    "error",
    "destination_touched",
    "duration_s",
    "safety_backup_run_id",
)


def status_view(restore: RestoreItem) -> dict[str, Any]:
    """What a person may see of a restore item (never the job message with its object facts)."""
    item = restore.stored_fields()
    view = {name: item[name] for name in ("restore_id", *_SHOWN) if name in item}
    view["history"] = item.get("history", [])
    if item.get("source"):
        source = item["source"]
        view["source"] = {k: source.get(k) for k in ("run_id", "key", "version_id", "started_at", "bytes_stored")}
    if item.get("verification"):
        view["verification"] = item["verification"]
    return view


def render_restore_status(view: dict[str, Any]) -> str:
    lines = [f"Restore {view.get('restore_id')}: {str(view.get('state', '?')).upper()}"]
    for name in _SHOWN[1:]:
        if view.get(name) not in (None, ""):
            lines.append(f"  {name.replace('_', ' '):<22}{view[name]}")
    source = view.get("source")
    if source:
        lines.append(f"  {'backup':<22}run {source.get('run_id')} (dump started {source.get('started_at')})")
    if view.get("history"):
        lines.append("  steps:")
        lines += [f"    {step.get('at')}  {step.get('state')}" for step in view["history"]]
    verification = view.get("verification")
    if verification:
        checks = verification.get("checks", {}) if isinstance(verification, dict) else {}
        lines.append("  verification:")
        for key in ("integrity_check", "tables", "total_rows", "bytes", "cleanup"):
            if key in checks:
                lines.append(f"    {key:<20}{checks[key]}")
    if view.get("safety_backup_run_id"):
        target = view.get("destination")
        lines.append(
            f"  undo with: backupctl restore {target} --run {view['safety_backup_run_id']} --in-place --reason 'undo'"
        )
    return "\n".join(lines) + "\n"


def run_status(args: argparse.Namespace, ctx: Context) -> int:
    item = ctx.ledger.restores.get(args.restore_id)
    if item is None:
        sys.stderr.write(f"backupctl: no restore {args.restore_id!r} in the ledger {ctx.table}\n")
        return 1
    view = status_view(item)
    sys.stdout.write(to_json(view) if ctx.json else render_restore_status(view))
    return 0


def register(subparsers: Any) -> None:
    restore = subparsers.add_parser("restore", help="request a restore of a target (see docs/runbook.md)")
    restore.add_argument("target")
    which = restore.add_mutually_exclusive_group()
    which.add_argument(
        "--at",
        help="latest good backup whose dump started at or before this time (ISO-8601); a postgresql-physical"
        " target recovers to exactly this second (docs/pitr.md)",
    )
    which.add_argument("--run", help="exactly this run id (backupctl history TARGET)")
    where = restore.add_mutually_exclusive_group()
    where.add_argument("--to", metavar="OTHER_TARGET", help="clone into this target (must be in restore_to)")
    where.add_argument("--in-place", action="store_true", help="restore over the target (after a safety backup)")
    restore.add_argument("--dry-run", action="store_true", help="validate and report; restore nothing")
    restore.add_argument(
        "--from-offsite",
        action="store_true",
        help="read the backup's verified copy in the off-site vault (default: the backup bucket, falling back"
        " to the vault copy when the primary object is gone)",
    )
    restore.add_argument("--reason", required=True, help="why (kept in the ledger and the event)")
    restore.add_argument(
        "--requested-by", default=None, help="who asks, on the bus (default: user@host); the approvals URL knows"
    )
    restore.add_argument("--restore-id", default=None, help="idempotency key (default: generated)")
    restore.set_defaults(command=run_restore)

    approve = subparsers.add_parser(
        "approve", help="approve a restore into a protected target (you: an approver, not the requester)"
    )
    approve.add_argument("restore_id")
    approve.set_defaults(command=run_approve)

    status = subparsers.add_parser("restore-status", help="state, steps and verification of a restore")
    status.add_argument("restore_id")
    status.set_defaults(command=run_status)
