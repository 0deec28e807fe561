"""``backupctl report``: the evidence report for a period — as a self-contained HTML page (``--html FILE``),
its machine-readable JSON twin (``--json [FILE]``, stdout without a file), or a table on stdout.

The period is ``--since`` to ``--until`` (default: the 30 days up to now); each takes an ISO date or time
(UTC unless it says otherwise) or a duration back from now (``7d``, ``36h``). An end in the future is cut
to now. The page names the pipeline, the period, when and by whom (the AWS caller identity) it was made.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backup_contracts.formatting import format_time
from backup_contracts.schedule import ScheduleError, parse_duration
from backupctl.attainment import Interval
from backupctl.context import Context, UsageError
from backupctl.render import table, to_json
from backupctl.report_html import render_html
from backupctl.report_ledger import collect_targets
from backupctl.report_model import Report, SilenceSource

DEFAULT_PERIOD = timedelta(days=30)
PERIOD_MAX = timedelta(days=3660)


def parse_moment(text: str, now: datetime, flag: str) -> datetime:
    """``2026-11-01``, ``2026-11-01T06:00``, ``2026-11-01T06:00:00+01:00`` (UTC when no offset) or ``7d`` ago."""
    try:
        return now - parse_duration(text, PERIOD_MAX)
    except ScheduleError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is neither a date, a time nor a duration. Fix: e.g. {flag} 2026-11-01,"
            f" {flag} 2026-11-01T06:00Z or {flag} 7d"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_period(since: str | None, until: str | None, now: datetime) -> tuple[Interval, str | None]:
    end = parse_moment(until, now, "--until") if until else now
    note = None
    if end > now:
        end, note = now, f"the end was cut to the time of generation (asked: {format_time(end)})"
    start = parse_moment(since, now, "--since") if since else end - DEFAULT_PERIOD
    if start >= end:
        raise UsageError(
            f"the period is empty: --since {format_time(start)} is not before --until {format_time(end)}."
            " Fix: give an earlier --since or a later --until"
        )
    if end - start > PERIOD_MAX:
        raise UsageError("the period is longer than 3660 days. Fix: report on a shorter period")
    return Interval(start, end), note


def caller_identity(ctx: Context) -> dict[str, str | None]:
    """Who is generating the report, as AWS authenticates them (STS GetCallerIdentity)."""
    try:
        identity = ctx.client("sts").get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        return {"arn": None, "account": None, "user_id": None, "error": str(exc)}
    return {
        "arn": identity.get("Arn"),
        "account": identity.get("Account"),
        "user_id": identity.get("UserId"),
        "error": None,
    }


def build_report(
    ctx: Context,
    period: Interval,
    *,
    now: datetime,
    period_note: str | None = None,
    silences: SilenceSource | None = None,
) -> Report:
    fleet = ctx.fleet
    return Report(
        pipeline=fleet.pipeline.name,
        period=period,
        generated_at=now,
        generated_by=caller_identity(ctx),
        ledger_table=ctx.table,
        fleet_file=str(ctx.fleet_file),
        fleet_sha256=hashlib.sha256(ctx.fleet_file.read_bytes()).hexdigest() if ctx.has_fleet else None,
        targets=collect_targets(ctx.ledger, fleet, period, now=now, silences=silences),
        silences_recorded=(silences.recorded if silences is not None else True),  # the ledger records them
        period_note=period_note,
    )


def render_summary(report: Report) -> str:
    """The table printed without --html/--json: the numbers of the summary, one line per target."""
    headers = ["TARGET", "RPO ATTAINMENT", "GOOD", "FAILED", "MISSING", "RTO OBJECTIVE", "RTO ATTAINMENT", "LAST DRILL"]
    rows = []
    for target in report.targets:
        rpo, rto = target.rpo_attainment, target.rto_attainment
        drill = target.state.last_drill_at if target.state else None
        rows.append(
            [
                target.name,
                f"{rpo.percent:.2f} %" if rpo.percent is not None else f"n/a ({rpo.reason})",
                str(target.count("good")),
                str(target.count("failed") + target.count("unverified")),
                str(target.count("missing")),
                "no objective" if rto.objective is None else str(rto.objective),
                f"{rto.percent:.2f} %" if rto.percent is not None else f"n/a ({rto.reason})",
                format_time(drill) if drill else "never",
            ]
        )
    head = (
        f"{report.pipeline}: evidence report {format_time(report.period.start)} to {format_time(report.period.end)}\n"
    )
    return head + table(headers, rows)


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def run(args: argparse.Namespace, ctx: Context) -> int:
    now = datetime.now(UTC)
    period, note = resolve_period(args.since, args.until, now)
    report = build_report(ctx, period, now=now, period_note=note)
    json_text = to_json(report.as_json())
    json_out = args.json_out or ("-" if ctx.json else None)
    twin = None
    if json_out and json_out != "-":
        _write(json_out, json_text)
        twin = {"name": Path(json_out).name, "sha256": hashlib.sha256(json_text.encode("utf-8")).hexdigest()}
    if args.html:
        _write(args.html, render_html(report, json_twin=twin))
    if json_out == "-":
        sys.stdout.write(json_text)
    elif not args.html and not json_out:
        sys.stdout.write(render_summary(report))
    written = [p for p in (args.html, json_out) if p and p != "-"]
    if written:
        sys.stderr.write(f"backupctl: wrote {', '.join(written)}\n")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report", help="evidence report for a period: runs, RPO/RTO attainment, drills, sizes (HTML and JSON)"
    )
    parser.add_argument("--html", metavar="FILE", help="write the self-contained HTML page to FILE")
    parser.add_argument(
        "--json",
        dest="json_out",
        metavar="FILE",
        nargs="?",
        const="-",
        help="write the JSON twin to FILE (stdout without FILE)",
    )
    parser.add_argument("--since", help="start: ISO date or time (UTC by default) or a duration ago, e.g. 7d")
    parser.add_argument("--until", help="end (default now): ISO date or time, or a duration ago")
    parser.set_defaults(command=run)
