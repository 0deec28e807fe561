"""The runs of ``bench.agent_stream`` and their summary: medians, ratios to the limit, the targets.

Split from ``bench.agent_stream`` to keep each module small; see that module for the pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.harness import MiB, median

TARGETS = {
    "rss_mib": 96.0,  # agent peak RSS
    "wall_ratio": 1.4,  # agent wall / limit wall
    "rss_flat": 0.10,  # agent peak RSS, largest vs smallest size
}


@dataclass
class Run:
    pipeline: str
    size_gb: float
    round: int
    wall_s: float
    exit_code: int
    stored_bytes: int | None = None
    bytes_in: int | None = None
    rss_mib: dict[str, float] = field(default_factory=dict)  # per command name (sampled VmHWM)
    uploader_rss_mib: float | None = None  # the agent / aws process, pg_dump excluded
    sse: str | None = None
    cpu_s: float = 0.0  # CPU of the pipeline's processes (user + system), PostgreSQL's backend not included
    moto_cpu_s: float = 0.0  # CPU the moto server spent during the run
    backend_cpu_s: float = 0.0  # CPU of the PostgreSQL backend(s) serving the dump (sampled, may miss the last 0.1 s)
    error: str = ""


# --------------------------------------------------------------------------- reporting


def summarize(runs: list[Run], sizes: list[float], pipelines: list[str]) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        ok = [r for r in runs if r.size_gb == size and r.exit_code == 0]
        limit = median([r.wall_s for r in ok if r.pipeline == "limit"])
        for pipeline in pipelines:
            mine = [r for r in ok if r.pipeline == pipeline]
            failed = sum(1 for r in runs if r.size_gb == size and r.pipeline == pipeline and r.exit_code != 0)
            wall = median([r.wall_s for r in mine])
            stored = median([float(r.stored_bytes) for r in mine if r.stored_bytes is not None])
            rss = [r.uploader_rss_mib for r in mine if r.uploader_rss_mib is not None]
            pg = [r.rss_mib.get("pg_dump", 0.0) for r in mine]
            rows.append(
                {
                    "size_gb": size,
                    "pipeline": pipeline,
                    "runs": len(mine),
                    "failed": failed,
                    "wall_s": wall,
                    "walls": [r.wall_s for r in mine],
                    "ratio": (wall / limit) if wall and limit else None,
                    "stored_bytes": stored,
                    "uploader_peak_rss_mib": max(rss) if rss else None,
                    "pg_dump_peak_rss_mib": max(pg) if pg else None,
                    "bytes_in": next((r.bytes_in for r in mine if r.bytes_in), None),
                    "cpu_s": median([r.cpu_s for r in mine]),
                    "backend_cpu_s": median([r.backend_cpu_s for r in mine]),
                    "moto_cpu_s": median([r.moto_cpu_s for r in mine]),
                }
            )
    return rows


def table(rows: list[dict[str, Any]], dump_bytes: dict[float, int]) -> str:
    head = (
        "| size | pipeline | median wall s (runs) | x limit | stored MiB | ratio raw/stored | uploader peak RSS MiB |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in rows:
        raw = dump_bytes.get(row["size_gb"])
        stored = row["stored_bytes"]
        lines.append(
            "| {size} | {p} | {wall} ({walls}) | {ratio} | {stored} | {cr} | {rss} |".format(
                size=f"{row['size_gb']:g} GiB db" + (f", {raw / MiB:,.0f} MiB dump" if raw else ""),
                p=row["pipeline"],
                wall=f"{row['wall_s']:.1f}" if row["wall_s"] else "-",
                walls=", ".join(f"{w:.1f}" for w in row["walls"])
                + (f"; {row['failed']} failed" if row["failed"] else ""),
                ratio=f"{row['ratio']:.2f}" if row["ratio"] else "-",
                stored=f"{stored / MiB:,.1f}" if stored else "-",
                cr=f"{raw / stored:.2f}" if stored and raw else "-",
                rss=f"{row['uploader_peak_rss_mib']:.1f}" if row["uploader_peak_rss_mib"] else "-",
            )
        )
    return "\n".join(lines)


def cpu_table(rows: list[dict[str, Any]]) -> str:
    """Where the CPU goes (medians): the pipeline's processes, PostgreSQL's backend, moto."""
    lines = [
        "| size | pipeline | pipeline processes CPU s | PG backend CPU s | moto CPU s | total CPU s"
        " | wall s x 2 cores |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["wall_s"] is None:
            continue
        total = (row["cpu_s"] or 0) + (row["backend_cpu_s"] or 0) + (row["moto_cpu_s"] or 0)
        lines.append(
            f"| {row['size_gb']:g} GiB | {row['pipeline']} | {row['cpu_s']:.1f} | {row['backend_cpu_s']:.1f} | "
            f"{row['moto_cpu_s']:.1f} | {total:.1f} | {2 * row['wall_s']:.1f} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    by = {(r["size_gb"], r["pipeline"]): r for r in rows}
    sizes = sorted({r["size_gb"] for r in rows})

    def verdict(ok: bool, text: str) -> None:
        out.append(f"{'PASS' if ok else 'MISS'} {text}")

    for size in sizes:
        agent, script = by.get((size, "agent")), by.get((size, "script"))
        if agent and agent["ratio"]:
            limit = TARGETS["wall_ratio"]
            verdict(
                agent["ratio"] <= limit, f"{size:g} GiB: agent wall {agent['ratio']:.2f} x limit (target <= {limit})"
            )
        if agent and script and agent["stored_bytes"] and script["stored_bytes"]:
            verdict(
                agent["stored_bytes"] <= script["stored_bytes"],
                f"{size:g} GiB: agent stored {agent['stored_bytes'] / MiB:,.1f} MiB vs script "
                f"{script['stored_bytes'] / MiB:,.1f} MiB (target <=)",
            )
        rss = agent["uploader_peak_rss_mib"] if agent else None
        if rss:
            limit = TARGETS["rss_mib"]
            verdict(rss <= limit, f"{size:g} GiB: agent peak RSS {rss:.1f} MiB (target <= {limit:g})")
    peaks = [by[(s, "agent")]["uploader_peak_rss_mib"] for s in sizes if (s, "agent") in by]
    peaks = [p for p in peaks if p]
    if len(peaks) >= 2:
        spread = max(peaks) / min(peaks) - 1
        verdict(spread <= TARGETS["rss_flat"], f"agent peak RSS spread across sizes {spread:.1%} (target <= 10%)")
    return out
