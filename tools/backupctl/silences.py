"""Silences from the command line (docs/oncall.md#silences-and-maintenance-windows):

    backupctl silence (--target GLOB | --agent GLOB | both) (--for 2h | --until TIME) [--from TIME] --reason ...
    backupctl unsilence SILENCE_ID [--reason ...]
    backupctl silences [--all]

``silence`` checks the request against the fleet file exactly as the pipeline will
(``backup_contracts.silences.problems``: length within ``pipeline.alerts.silence_max``, not expired, globs
that match something), then puts a ``Silence Requested`` on the bus; the watchdog records it and announces
it on the alert topic (SILENCE SET). ``unsilence`` puts an ``Unsilence Requested``. ``silences`` reads the
ledger: the silences in force or booked ahead (``--all``: also those that ended in the last 30 days).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from backup_contracts import silences as rules
from backup_contracts.eventbus import put_events
from backup_contracts.events import SilenceRequested, UnsilenceRequested
from backup_contracts.formatting import format_time
from backup_contracts.schedule import ScheduleError, parse_duration
from backup_contracts.validation import describe_validation_error
from backup_functions.ledger import SilenceItem
from backupctl.backup_now import default_requester
from backupctl.context import Context, UsageError
from backupctl.render import table, to_json
from backupctl.restore import parse_time

RECENT = timedelta(days=30)


def build_silence(args: argparse.Namespace, now: datetime) -> SilenceRequested:
    if bool(args.duration) == bool(args.until):
        raise UsageError("say how long: --for DURATION (e.g. 2h) or --until TIME, one of them")
    starts = parse_time(args.starts) if args.starts else None
    if args.duration:
        try:
            length = parse_duration(args.duration, timedelta(days=3650))
        except ScheduleError as exc:
            raise UsageError(f"--for {exc}") from None
        expires = (starts or now) + length
    else:
        expires = parse_time(args.until)
    try:
        return SilenceRequested(
            silence_id=args.silence_id or f"s-{now:%Y%m%d-%H%M}-{uuid.uuid4().hex[:6]}",
            target=args.target,
            agent=args.agent,
            starts_at=starts,
            expires_at=expires,
            requested_by=args.requested_by or default_requester(),
            reason=args.reason,
        )
    except ValidationError as exc:
        raise UsageError(f"invalid silence: {describe_validation_error(exc, root='silence')}") from None


def run_silence(args: argparse.Namespace, ctx: Context) -> int:
    now = datetime.now(UTC)
    request = build_silence(args, now)
    fleet = ctx.fleet
    pairs = [(agent.name, target.name) for agent, target in fleet.targets()]
    found = rules.problems(request, now=now, longest=fleet.pipeline.alerts.silence_max_delta, targets=pairs)
    if found:
        raise UsageError("the pipeline would refuse this silence: " + "; ".join(found))
    event_id = put_events(ctx.client("events"), [request], ctx.bus_name)[0]
    if ctx.json:
        sys.stdout.write(to_json({"silence_id": request.silence_id, "event_id": event_id, "bus": ctx.bus_name}))
        return 0
    sys.stdout.write(
        f"Silence {request.silence_id} requested until {format_time(request.expires_at)}"
        f" (event {event_id} on {ctx.bus_name}).\n"
        "The alert topic announces it (SILENCE SET); what is still broken when it ends pages once then.\n"
        f"List: backupctl silences    End sooner: backupctl unsilence {request.silence_id}\n"
    )
    return 0


def run_unsilence(args: argparse.Namespace, ctx: Context) -> int:
    try:
        request = UnsilenceRequested(
            silence_id=args.silence_id, requested_by=args.requested_by or default_requester(), reason=args.reason
        )
    except ValidationError as exc:
        raise UsageError(f"invalid unsilence: {describe_validation_error(exc, root='unsilence')}") from None
    event_id = put_events(ctx.client("events"), [request], ctx.bus_name)[0]
    if ctx.json:
        sys.stdout.write(to_json({"silence_id": request.silence_id, "event_id": event_id}))
    else:
        sys.stdout.write(
            f"Unsilence of {request.silence_id} requested (event {event_id}); what it held pages at the next"
            " watchdog tick if still broken.\n"
        )
    return 0


def state_of(silence: SilenceItem, now: datetime) -> str:
    if silence.ended_at is not None or silence.ends_at <= now:
        return "lifted" if silence.lifted_at else "expired"
    return "in force" if silence.starts_at <= now else "booked"


def listed(silences: list[SilenceItem], now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "silence_id": s.silence_id,
            "target": s.target,
            "agent": s.agent,
            "starts_at": s.starts_at,
            "expires_at": s.expires_at,
            "state": state_of(s, now),
            "requested_by": s.requested_by,
            "reason": s.reason,
            "lifted_at": s.lifted_at,
            "lifted_by": s.lifted_by,
        }
        for s in sorted(silences, key=lambda s: (s.starts_at, s.silence_id))
    ]


def render_silences(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No silence in force.\n"
    headers = ["SILENCE", "HOLDS", "FROM", "UNTIL", "STATE", "BY", "REASON"]
    cells = [
        [
            row["silence_id"],
            ", ".join(f"{kind} {row[kind]}" for kind in ("target", "agent") if row[kind]),
            format_time(row["starts_at"]),
            format_time(row["expires_at"]),
            row["state"] + (f" by {row['lifted_by']}" if row["lifted_by"] else ""),
            row["requested_by"],
            row["reason"],
        ]
        for row in rows
    ]
    return table(headers, cells)


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    now = datetime.now(UTC)
    silences = ctx.ledger.silences
    found = silences.overlapping(now - RECENT, now + rules.STARTS_AHEAD_MAX * 2) if args.all else None
    rows = listed(found if found is not None else [s for s in silences.not_expired(now) if s.ends_at > now], now)
    sys.stdout.write(to_json(rows) if ctx.json else render_silences(rows))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("silence", help="hold the pages about targets/agents for a while (maintenance)")
    parser.add_argument("--target", default=None, help="glob over target names, e.g. 'orders-*'")
    parser.add_argument("--agent", default=None, help="glob over agent names (every target it runs)")
    parser.add_argument("--for", dest="duration", default=None, help="how long, e.g. 90m, 2h, 1d")
    parser.add_argument("--until", default=None, help="ISO-8601 time with a zone")
    parser.add_argument("--from", dest="starts", default=None, help="start later (a maintenance window)")
    parser.add_argument("--reason", required=True, help="why (announced, kept in the ledger)")
    parser.add_argument("--requested-by", default=None, help="who asks (default: user@host)")
    parser.add_argument("--id", dest="silence_id", default=None, help="the silence id (default: generated)")
    parser.set_defaults(command=run_silence)

    parser = subparsers.add_parser("unsilence", help="end a silence now")
    parser.add_argument("silence_id")
    parser.add_argument("--reason", default=None)
    parser.add_argument("--requested-by", default=None, help="who asks (default: user@host)")
    parser.set_defaults(command=run_unsilence)

    parser = subparsers.add_parser("silences", help="the silences in force or booked (--all: the last 30 days too)")
    parser.add_argument("--all", action="store_true")
    parser.set_defaults(command=run_list)
