"""``backupctl backup-now TARGET --reason ...``: put a ``Backup Requested`` event on the bus."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
import uuid
from typing import Any

from pydantic import ValidationError

from backup_contracts.eventbus import put_events
from backup_contracts.events import BackupRequested
from backup_contracts.validation import describe_validation_error
from backupctl.context import Context, UsageError
from backupctl.render import to_json


def default_requester() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def build_request(target: str, reason: str, requested_by: str, request_id: str | None = None) -> BackupRequested:
    try:
        return BackupRequested(
            request_id=request_id or f"req-{uuid.uuid4().hex[:16]}",
            target=target,
            requested_by=requested_by,
            reason=reason,
        )
    except ValidationError as exc:
        raise UsageError(f"invalid backup request: {describe_validation_error(exc, root='request')}") from None


def send_request(events: Any, request: BackupRequested, bus: str) -> str:
    """PutEvents one entry; returns the EventBridge event id (``PutEventsError`` when refused)."""
    return put_events(events, [request], bus)[0]


def run(args: argparse.Namespace, ctx: Context) -> int:
    ctx.check_target(args.target)
    request = build_request(args.target, args.reason, args.requested_by or default_requester())
    event_id = send_request(ctx.client("events"), request, ctx.bus_name)
    if ctx.json:
        sys.stdout.write(to_json({"request_id": request.request_id, "event_id": event_id, "bus": ctx.bus_name}))
    else:
        sys.stdout.write(
            f"Backup requested for {request.target}: request {request.request_id}"
            f" (event {event_id} on {ctx.bus_name}).\n"
            f"Follow it with: backupctl history {request.target}\n"
        )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("backup-now", help="request an on-demand backup of a target")
    parser.add_argument("target")
    parser.add_argument("--reason", required=True, help="why (kept in the ledger and the event)")
    parser.add_argument("--requested-by", default=None, help="who asks (default: user@host)")
    parser.set_defaults(command=run)
