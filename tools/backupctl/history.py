"""``backupctl history TARGET``: the target's runs, newest first (one Query of its partition)."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from backup_contracts.formatting import ascii_line, format_age, format_bytes, format_time
from backup_functions.ledger import RunRecord
from backupctl.context import Context
from backupctl.render import RED, table, to_json, use_colour

ERROR_COLUMN_MAX = 60


def history_json(runs: list[RunRecord]) -> list[dict[str, Any]]:
    fields = (
        "run_id",
        "job_id",
        "trigger",
        "state",
        "started_at",
        "finished_at",
        "duration_s",
        "bytes_stored",
        "sha256",
        "bucket",
        "key",
        "version_id",
        "stage",
        "exit_code",
        "error",
        "offsite_bucket",
        "offsite_version_id",
        "offsite_verified_at",
    )
    stored = [run.stored_fields() for run in runs]
    return [{name: run[name] for name in fields if name in run} for run in stored]


def _offsite_cell(run: RunRecord) -> str:
    if run.offsite_verified_at is not None:
        return "ok"
    return "pending" if run.good else "-"


def render_history(target: str, runs: list[RunRecord], *, colour: bool = False, offsite: bool = False) -> str:
    """Runs as a table, newest first (as given); with ``offsite`` (the fleet has a vault) an OFF-SITE column."""
    if not runs:
        return f"{target}: no runs recorded\n"
    headers = ["STARTED", "FINISHED", "DURATION", "STATE", "SIZE", "TRIGGER", "RUN", "ERROR"]
    if offsite:
        headers.insert(5, "OFF-SITE")
    cells, colours = [], []
    for run in runs:
        started, finished = run.started_at, run.finished_at
        duration = run.duration_s
        if duration is None and finished:
            duration = (finished - started).total_seconds()
        size = run.bytes_stored
        state = run.state or "?"
        line = [
            format_time(started),
            format_time(finished) if finished else "-",
            format_age(timedelta(seconds=float(duration))) if duration is not None else "-",
            state,
            format_bytes(int(size)) if size is not None else "-",
            run.trigger or "-",
            run.run_id,
            ascii_line(run.error, ERROR_COLUMN_MAX) if run.error else "",
        ]
        if offsite:
            line.insert(5, _offsite_cell(run))
        cells.append(line)
        colours.append(RED if colour and state not in ("succeeded", "started") else None)
    return f"{target}: {len(runs)} run(s), newest first\n" + table(headers, cells, colours)


def run(args: argparse.Namespace, ctx: Context) -> int:
    ctx.check_target(args.target)
    runs = ctx.ledger.runs.newest(args.target, limit=args.limit)
    if ctx.json:
        sys.stdout.write(to_json(history_json(runs)))
    else:
        offsite = ctx.fleet.pipeline.offsite is not None
        sys.stdout.write(render_history(args.target, runs, colour=use_colour(sys.stdout), offsite=offsite))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("history", help="a target's runs, newest first")
    parser.add_argument("target")
    parser.add_argument("--limit", type=_positive, default=20, help="how many runs (default 20)")
    parser.set_defaults(command=run)
