"""The evidence report as one self-contained HTML page: Jinja2 with autoescape, inline CSS, inline SVG.

No script, no font, no image, no link to anything outside the file: the page carries a Content Security
Policy of ``default-src 'none'`` that allows only its own style element (by hash), so a browser fetches
nothing even if a ledger text tried to make it. Every number on the page is read from the JSON twin's
dictionary (``Report.as_json()``), so the page and ``--json`` show the same numbers.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from backup_contracts.formatting import format_age, format_bytes, format_time
from backupctl.attainment import Interval
from backupctl.report_model import MARK_KINDS, Report, TargetReport

TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data (pyproject.toml)
WIDTH = 1000  # SVG user units of a chart's drawing area
LANE = 28  # height of the timeline's band
SIZE_HEIGHT = 90
LEFT = 60  # room for the size chart's axis labels

MARK_LABELS = {
    "good": "good backup",
    "failed": "failed",
    "unverified": "not verified (does not count)",
    "missing": "missing (expected, never ran or never ended)",
    "running": "running",
    "silenced": "silenced",
}


def _x(moment: datetime, period: Interval) -> float:
    span = (period.end - period.start).total_seconds()
    offset = (min(max(moment, period.start), period.end) - period.start).total_seconds()
    return round(LEFT + offset / span * WIDTH, 2)


def _bands(intervals: list[dict[str, Any]], period: Interval, kind: str) -> list[dict[str, Any]]:
    bands = []
    for interval in intervals:
        x0, x1 = _x(interval["from"], period), _x(interval["until"], period)
        bands.append({"x": x0, "w": round(max(x1 - x0, 0.5), 2), "kind": kind})
    return bands


def _axis(period: Interval) -> list[dict[str, Any]]:
    """Day ticks (at most ~12 labelled), midnight UTC."""
    days = max((period.end - period.start).days, 1)
    every = max(1, -(-days // 12))
    ticks = []
    day = period.start.replace(hour=0, minute=0, second=0, microsecond=0)
    if day < period.start:
        day += timedelta(days=1)
    index = 0
    while day <= period.end:
        ticks.append({"x": _x(day, period), "label": f"{day:%m-%d}" if index % every == 0 else ""})
        day += timedelta(days=1)
        index += 1
    return ticks


def timeline(target: dict[str, Any], period: Interval) -> dict[str, Any]:
    """The geometry of one target's timeline: measured/covered/breach bands, silences, run marks."""
    rpo = target["rpo_attainment"]
    bands: list[dict[str, Any]] = []
    if rpo["measured_from"] is not None:
        window = {"from": rpo["measured_from"], "until": rpo["measured_until"]}
        bands += _bands([window], period, "covered")
        bands += _bands(rpo["breaches"], period, "breach")
    bands += _bands(target["silences"], period, "silenced")
    marks = [
        {
            "x": _x(mark["at"], period),
            "kind": mark["kind"],
            "title": f"{MARK_LABELS[mark['kind']]} {format_time(mark['at'])} {mark['run_id'] or mark['job_id'] or ''}",
        }
        for mark in target["timeline"]
    ]
    return {"bands": bands, "marks": marks, "axis": _axis(period), "lane": LANE}


def size_chart(target: dict[str, Any], period: Interval) -> dict[str, Any] | None:
    points = target["stored_bytes"]
    if not points:
        return None
    top = max(point["bytes"] for point in points) or 1
    plotted = [
        {
            "x": _x(point["at"], period),
            "y": round(SIZE_HEIGHT - point["bytes"] / top * (SIZE_HEIGHT - 10), 2),
            "title": f"{format_time(point['at'])}: {format_bytes(point['bytes'])}",
        }
        for point in points
    ]
    return {
        "points": plotted,
        "path": " ".join(f"{p['x']},{p['y']}" for p in plotted),
        "top": format_bytes(top),
        "height": SIZE_HEIGHT,
        "axis": _axis(period),
    }


def _time(value: datetime | None) -> str:
    return format_time(value) if value is not None else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds == 0:
        return "0s"
    return f"{seconds:.1f}s" if seconds < 60 else format_age(timedelta(seconds=seconds))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} %"


def _bytes(value: int | None) -> str:
    return "-" if value is None else format_bytes(value)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every text from the ledger or the fleet is escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(time=_time, duration=_duration, percent=_percent, size=_bytes)
    return env


def stylesheet() -> str:
    return (TEMPLATES / "report.css").read_text(encoding="utf-8")


def csp(css: str) -> str:
    """Nothing may load; only the page's own style element applies (by its hash)."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"


def _target_view(target: TargetReport, doc: dict[str, Any], period: Interval) -> dict[str, Any]:
    return {
        "doc": doc,
        "anchor": f"t-{hashlib.sha256(target.name.encode()).hexdigest()[:12]}",
        "timeline": timeline(doc, period),
        "sizes": size_chart(doc, period),
        "problems": [m for m in doc["timeline"] if m["kind"] not in ("good", "running")],
    }


def render_html(report: Report, *, json_twin: dict[str, str] | None = None) -> str:
    """The page. ``json_twin`` (file name and sha256), when the JSON was written alongside, is named in it."""
    doc = report.as_json()
    css = stylesheet()
    targets = [
        _target_view(target, target_doc, report.period)
        for target, target_doc in zip(report.targets, doc["targets"], strict=True)
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        doc=doc,
        css=Markup(css),  # noqa: S704 - the package's own stylesheet, not user input
        csp=csp(css),
        targets=targets,
        kinds=[(kind, MARK_LABELS[kind]) for kind in MARK_KINDS],
        width=WIDTH + LEFT + 30,  # room right of the chart for the last tick's label
        left=LEFT,
        json_twin=json_twin,
    )
