"""The runs of ``bench.restore`` and their summary: medians, ratios to the local restores, peaks.

Split from ``bench.restore`` to keep each module small; see that module for the pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.harness import MiB, median

BASELINE = {"postgresql": "pg_restore", "mariadb": "mariadb"}  # the single-stream local restore per engine
PARALLEL = "pg_restore-jN"


@dataclass
class Run:
    engine: str
    size_gb: float
    pipeline: str
    round: int
    database: str  # the destination, created by the run and dropped after it
    wall_s: float
    exit_code: int
    rss_mib: dict[str, float] = field(default_factory=dict)  # per command name (sampled VmHWM)
    agent_rss_mib: float | None = None  # the agent's own process (wait4 ru_maxrss when it is the agent's)
    tool_rss_mib: float | None = None  # pg_restore / mariadb client (the highest per-process peak)
    spool_peak_bytes: int | None = None  # sampled bytes under the agent's state_dir (its spool/)
    event_duration_s: float | None = None  # the Restore Succeeded event's duration_s
    verified_s: float | None = None  # agent process start -> Restore Succeeded finished_at
    startup_s: float | None = None  # agent process start -> the restore's started_at
    tail_s: float | None = None  # Restore Succeeded finished_at -> process exit (the drain poll)
    cpu_s: float = 0.0  # the pipeline's processes (user + system; wait4, children included)
    server_cpu_s: float = 0.0  # PostgreSQL backends of the destination (sampled) / mariadbd (exact)
    moto_cpu_s: float = 0.0
    agent_jobs: int | None = None  # the pg_restore jobs the agent's report names (verification "jobs")
    rows_ok: bool | None = None  # every table's row count equals the source's (checked untimed)
    error: str = ""


def summarize(runs: list[Run], keys: list[tuple[str, float]], pipelines: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = []
    for engine, size in keys:
        here = [r for r in runs if r.engine == engine and r.size_gb == size]
        ok = [r for r in here if r.exit_code == 0 and not r.error]
        base = median([r.wall_s for r in ok if r.pipeline == BASELINE[engine]])
        parallel = median([r.wall_s for r in ok if r.pipeline == PARALLEL]) if engine == "postgresql" else None
        for pipeline in pipelines[engine]:
            mine = [r for r in ok if r.pipeline == pipeline]
            wall = median([r.wall_s for r in mine])

            def peak(values: list[float | None]) -> float | None:
                present = [v for v in values if v is not None]
                return max(present) if present else None

            rows.append(
                {
                    "engine": engine,
                    "size_gb": size,
                    "pipeline": pipeline,
                    "runs": len(mine),
                    "failed": sum(1 for r in here if r.pipeline == pipeline) - len(mine),
                    "wall_s": wall,
                    "walls": [r.wall_s for r in mine],
                    "x_baseline": wall / base if wall and base else None,
                    "x_parallel": wall / parallel if wall and parallel else None,
                    "verified_s": median([r.verified_s for r in mine if r.verified_s is not None]),
                    "event_duration_s": median([r.event_duration_s for r in mine if r.event_duration_s is not None]),
                    "startup_s": median([r.startup_s for r in mine if r.startup_s is not None]),
                    "tail_s": median([r.tail_s for r in mine if r.tail_s is not None]),
                    "agent_peak_rss_mib": peak([r.agent_rss_mib for r in mine]),
                    "tool_peak_rss_mib": peak([r.tool_rss_mib for r in mine]),
                    "spool_peak_bytes": peak([float(r.spool_peak_bytes) for r in mine if r.spool_peak_bytes]),
                    "cpu_s": median([r.cpu_s for r in mine]),
                    "server_cpu_s": median([r.server_cpu_s for r in mine]),
                    "moto_cpu_s": median([r.moto_cpu_s for r in mine]),
                    "rows_ok": all(r.rows_ok for r in mine) if mine else None,
                    "agent_jobs": next((r.agent_jobs for r in mine if r.agent_jobs), None),
                }
            )
    return rows


def _f(value: float | None, fmt: str = "{:.1f}") -> str:
    return fmt.format(value) if value is not None else "-"


def table(rows: list[dict[str, Any]], sources: dict[tuple[str, float], dict[str, Any]], jobs: int) -> str:
    lines = [
        f"| engine | size | pipeline | median wall s (runs) | x pg_restore / x mariadb | x pg_restore-j{jobs} "
        "| agent: start + restore + exit s | agent peak RSS MiB | pg_restore / mariadb peak RSS MiB "
        "| spool peak MiB (docs: raw dump / object) | rows equal |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        source = sources.get((row["engine"], row["size_gb"]), {})
        walls = ", ".join(f"{w:.1f}" for w in row["walls"]) + (f"; {row['failed']} failed" if row["failed"] else "")
        agent = row["pipeline"] == "agent"
        phases = (
            f"{_f(row['startup_s'])} + {_f(row['event_duration_s'])} + {_f(row['tail_s'])}"
            if agent and row["event_duration_s"] is not None
            else "-"
        )
        # docs/runbook.md: a PostgreSQL restore spools the raw dump (the run's bytes_in), others the object
        expected = source.get("raw_bytes" if row["engine"] == "postgresql" else "stored_bytes")
        spool = (
            f"{_f(row['spool_peak_bytes'] / MiB if row['spool_peak_bytes'] else None)}"
            + (f" ({expected / MiB:,.1f})" if expected else "")
            if agent
            else "-"
        )
        dump = source.get("dump_bytes")
        lines.append(
            "| {engine} | {size} | {pipeline} | {wall} ({walls}) | {xb} | {xp} | {phases} | {arss} | {trss} "
            "| {spool} | {rows} |".format(
                engine=row["engine"],
                size=f"{row['size_gb']:g} GiB db" + (f", {dump / MiB:,.0f} MiB dump" if dump else ""),
                pipeline=row["pipeline"].replace("jN", f"j{jobs}")
                + (f" (pg_restore -j{row['agent_jobs']})" if row.get("agent_jobs") else ""),
                wall=_f(row["wall_s"]),
                walls=walls,
                xb=_f(row["x_baseline"], "{:.2f}"),
                xp=_f(row["x_parallel"], "{:.2f}"),
                phases=phases,
                arss=_f(row["agent_peak_rss_mib"]) if agent else "-",
                trss=_f(row["tool_peak_rss_mib"]),
                spool=spool,
                rows={True: "yes", False: "NO", None: "-"}[row["rows_ok"]],
            )
        )
    return "\n".join(lines)


def cpu_table(rows: list[dict[str, Any]], jobs: int) -> str:
    """Where the CPU goes (medians): the pipeline's processes, the database server, moto."""
    lines = [
        "| engine | size | pipeline | pipeline processes CPU s | server CPU s | moto CPU s | total CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["wall_s"] is None:
            continue
        total = (row["cpu_s"] or 0) + (row["server_cpu_s"] or 0) + (row["moto_cpu_s"] or 0)
        lines.append(
            f"| {row['engine']} | {row['size_gb']:g} GiB | {row['pipeline'].replace('jN', f'j{jobs}')} "
            f"| {row['cpu_s']:.1f} | {row['server_cpu_s']:.1f} | {row['moto_cpu_s']:.1f} | {total:.1f} |"
        )
    return "\n".join(lines)
