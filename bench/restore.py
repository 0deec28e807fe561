"""Benchmark: the agent's restore, request -> verified, against a local pg_restore (and mariadb).

The restore counterpart of ``bench.agent_stream``, in the same harness (``bench.harness``): one
moto server in its own process, interleaved rounds (every pipeline once per database per round, the
first pipeline rotating), medians, the agent's peak RSS from ``wait4``, the other processes' from
``/proc`` VmHWM. Every run restores the same backup into a new database (created inside the timed
part by every pipeline: the agent creates its clone destination itself) that is dropped afterwards.

PostgreSQL (``bench.datasets``):
  pg_restore      createdb -T template0 NEW && pg_restore --no-owner --exit-on-error -d NEW DUMP
  pg_restore-jN   the same with -j N (N = --jobs, default the cores)
  agent           a clone restore job on the agent's queue; backup-agent run --once until it exits
DUMP is the uncompressed custom dump (pg_dump -Fc -Z0) on local disk, made once, untimed; the agent
restores its own backup of the same database (backup-agent backup, untimed).
MariaDB (``bench.mariadb_datasets``):
  mariadb         mariadb -e 'CREATE DATABASE NEW' && mariadb NEW < DUMP.sql
  agent           as above, into a mariadb destination target
DUMP.sql is mariadb-dump --single-transaction --routines --triggers --events --hex-blob.

    python -m bench.restore                                  # 1 and 4 GiB, 3 rounds (make bench-restore)
    python -m bench.restore --sizes 0.1 --rounds 1           # a few minutes: check the harness
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import datasets as pg
from bench import mariadb_datasets as my
from bench.harness import MiB, MotoProcess, aws_env, cpu_seconds, pids_named, run_measured
from bench.restore_agent import DESTINATION, AgentRestores, AgentRun, target_entry
from bench.restore_local import (
    drop,
    dump_locally,
    generators_running,
    local_command,
    machine,
    row_counts,
    settle,
)
from bench.restore_report import Run, cpu_table, summarize, table

PIPELINES = {"postgresql": ["pg_restore", "pg_restore-jN", "agent"], "mariadb": ["mariadb", "agent"]}
TOOLS = ("pg_restore", "psql", "createdb", "mariadb", "mysql", "bash", "zstd")  # not the agent's own process


@dataclass
class Source:
    """One database to restore: its local dump (for the local pipelines) and the agent's backup of it."""

    engine: str
    size_gb: float
    database: str
    dump_path: str
    dump_bytes: int
    rows: dict[str, int]
    backup: dict[str, Any]
    facts: dict[str, Any]

    @property
    def label(self) -> str:
        return ("pg-" if self.engine == "postgresql" else "mdb-") + f"{self.size_gb:g}".replace(".", "-") + "g"

    def entry(self, database: str | None = None) -> dict[str, str]:
        if self.engine == "postgresql":
            return target_entry("postgresql", pg.PG_HOST, pg.PG_PORT, pg.PG_USER, database or self.database)
        return target_entry("mariadb", my.HOST, my.PORT, my.USER, database or self.database)


# --------------------------------------------------------------------------- runs


class Bench:
    def __init__(self, args: argparse.Namespace, moto: MotoProcess, workdir: Path) -> None:
        self.args = args
        self.moto = moto
        self.workdir = workdir
        self.env = aws_env(moto.url)
        self.agent_env = {**self.env, **dict(item.split("=", 1) for item in args.agent_env)}
        self.agents = AgentRestores(moto, workdir, self.env, timeout=args.timeout)
        self.agents.setup()

    def prepare(self, engine: str, size: float, database: str) -> Source:
        suffix = ".pgdump" if engine == "postgresql" else ".sql"
        t0 = time.monotonic()
        path = self.workdir / f"{database}{suffix}"
        dump_bytes = dump_locally(engine, database, path, self.args.timeout)
        t1 = time.monotonic()
        source = Source(engine, size, database, str(path), dump_bytes, row_counts(engine, database), {}, {})
        source.backup, source.facts = self.agents.backup(source.label, source.entry())
        print(
            f"[restore] {engine} {database}: local dump {dump_bytes / MiB:,.0f} MiB in {t1 - t0:.1f}s; agent backup "
            f"{source.backup['bytes_stored'] / MiB:,.1f} MiB stored ({source.backup['compression']}) in "
            f"{time.monotonic() - t1:.1f}s; rows {sum(source.rows.values()):,} in {len(source.rows)} tables",
            flush=True,
        )
        return source

    def run_one(self, source: Source, pipeline: str, rnd: int) -> Run:
        engine = source.engine
        database = f"rst_{source.label}_{pipeline}_r{rnd}".replace("-", "_").lower()
        drop(engine, database)
        settle(engine)
        moto_cpu = self.moto.cpu_s()
        server = pids_named("mariadbd") if engine == "mariadb" else []
        server_cpu = cpu_seconds(server)
        watch = database if engine == "postgresql" else None
        agent: AgentRun | None = None
        if pipeline == "agent":
            extra = dict(item.split("=", 1) for item in self.args.agent_target_option)
            targets = {source.label: source.entry(), DESTINATION: {**source.entry(database), **extra}}
            agent = self.agents.restore(source.backup, source.facts, targets, env=self.agent_env, database=watch)
            wall, code, out, err, usage, sampler = (
                agent.wall_s,
                agent.exit_code,
                agent.stdout,
                agent.stderr,
                agent.usage,
                agent.sampler,
            )
        else:
            cmd = local_command(engine, pipeline, database, source.dump_path, self.args.jobs)
            wall, code, out, err, usage, sampler = run_measured(
                cmd, env=self.env, timeout=self.args.timeout, database=watch
            )
        run = Run(engine, source.size_gb, pipeline, rnd, database, round(wall, 3), code)
        run.cpu_s = round(usage.ru_utime + usage.ru_stime, 2)
        run.moto_cpu_s = round(self.moto.cpu_s() - moto_cpu, 2)
        run.server_cpu_s = round(cpu_seconds(server) - server_cpu if server else sampler.backend_cpu_s, 2)
        run.rss_mib = {name: round(kib / 1024, 1) for name, kib in sorted(sampler.hwm_kib.items())}
        run.tool_rss_mib = run.rss_mib.get("pg_restore" if engine == "postgresql" else "mariadb")
        if code != 0:
            run.error = (err or out).strip()[-600:]
        if agent is not None:
            self._agent_facts(run, agent)
        if not run.error:
            run.rows_ok = row_counts(engine, database) == source.rows
            if not run.rows_ok:
                run.error = "the restored row counts differ from the source's"
        drop(engine, database)
        return run

    @staticmethod
    def _agent_facts(run: Run, agent: AgentRun) -> None:
        # wait4's ru_maxrss covers the agent and its reaped children (pg_restore, psql, mariadb): when the
        # children's sampled peaks are below it, it is exactly the agent's own peak.
        exact = agent.usage.ru_maxrss / 1024
        tools = max((v for n, v in run.rss_mib.items() if n in TOOLS), default=0.0)
        sampled = max((v for n, v in run.rss_mib.items() if n not in TOOLS), default=None)
        run.agent_rss_mib = round(exact if exact > tools else (sampled or exact), 1)
        run.spool_peak_bytes = agent.spool_peak_bytes
        started, succeeded = agent.event("Restore Started"), agent.event("Restore Succeeded")
        if succeeded is None:
            failed = agent.event("Restore Failed")
            detail = f"{failed['stage']}: {failed['error']}" if failed else agent.stderr.strip()[-400:]
            run.error = run.error or f"no Restore Succeeded event ({detail})"
            return
        finished = datetime.fromisoformat(succeeded["finished_at"])
        run.event_duration_s = float(succeeded["duration_s"])
        jobs = (succeeded.get("verification") or {}).get("jobs")
        run.agent_jobs = int(jobs) if isinstance(jobs, int | str) and str(jobs).isdigit() else None
        run.verified_s = round((finished - agent.started_at).total_seconds(), 3)
        run.tail_s = round((agent.exited_at - finished).total_seconds(), 3)
        if started is not None:
            run.startup_s = round((datetime.fromisoformat(started["started_at"]) - agent.started_at).total_seconds(), 3)


# --------------------------------------------------------------------------- main


def ensure_databases(args: argparse.Namespace) -> dict[tuple[str, float], str]:
    while busy := generators_running():
        print(f"[restore] a dataset generation is running (pid {busy}); waiting for it to end", flush=True)
        time.sleep(30)
    wanted: dict[tuple[str, float], str] = {}
    for engine, sizes, names, module in (
        ("postgresql", args.sizes, args.database, pg),
        ("mariadb", args.mariadb_sizes, args.mariadb_database, my),
    ):
        if engine not in args.engines:
            continue
        if names:
            wanted.update({(engine, s): n for s, n in zip(sizes, names, strict=True)})
            continue
        if not args.skip_generate:
            module.ensure_all(sizes)
        wanted.update({(engine, s): module.database_name(s) for s in sizes})
    return wanted


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.restore", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--sizes", type=pg.parse_sizes, default=[1.0, 4.0], help="PostgreSQL sizes in GiB (default 1,4)")
    p.add_argument("--mariadb-sizes", type=pg.parse_sizes, help="MariaDB sizes in GiB (default: --sizes)")
    p.add_argument("--engines", default="postgresql,mariadb", help="comma-separated (default postgresql,mariadb)")
    p.add_argument("--pipelines", help="comma-separated subset of pg_restore,pg_restore-jN,mariadb,agent (default all)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="N of pg_restore-jN (default: the cores)")
    p.add_argument(
        "--database",
        action="append",
        default=[],
        metavar="NAME",
        help="PostgreSQL database to restore instead of the generated ones (repeatable; --sizes then label them)",
    )
    p.add_argument("--mariadb-database", action="append", default=[], metavar="NAME", help="the same for MariaDB")
    p.add_argument("--skip-generate", action="store_true", help="do not create/grow the databases; they must exist")
    p.add_argument(
        "--agent-target-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra setting on the agent's destination target, e.g. a restore option (repeatable)",
    )
    p.add_argument("--agent-env", action="append", default=[], metavar="KEY=VALUE", help="extra agent environment")
    p.add_argument("--workdir", type=Path, help="where the dumps and the agent's state go (default: system temp)")
    p.add_argument("--timeout", type=float, default=3600, help="stop a single run after this many seconds")
    p.add_argument("--max-minutes", type=float, default=240, help="start no new round after this many minutes")
    p.add_argument("--json", type=Path, default=Path("bench/results/restore.json"), help="results file")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if set(args.engines) - set(PIPELINES):
        p.error(f"--engines takes {', '.join(PIPELINES)}")
    chosen = set(args.pipelines.split(",")) if args.pipelines else {x for v in PIPELINES.values() for x in v}
    args.pipelines = {e: [x for x in PIPELINES[e] if x in chosen] for e in args.engines}
    args.mariadb_sizes = args.mariadb_sizes or args.sizes
    for names, flag in ((args.database, "sizes"), (args.mariadb_database, "mariadb_sizes")):
        if names and len(names) != len(getattr(args, flag)):
            if len(names) == 1 and len(getattr(args, flag)) > 1:
                setattr(args, flag, [getattr(args, flag)[0]])
            else:
                p.error(f"give one --{flag.replace('_', '-')} value per database (they label the rows)")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    wanted = ensure_databases(args)
    facts = machine()
    print(f"[restore] machine: {facts}", flush=True)
    runs: list[Run] = []
    sources: list[Source] = []
    with tempfile.TemporaryDirectory(prefix="bench-restore-", dir=args.workdir) as tmp, MotoProcess() as moto:
        bench = Bench(args, moto, Path(tmp))
        sources = [bench.prepare(engine, size, name) for (engine, size), name in wanted.items()]
        for rnd in range(1, args.rounds + 1):
            if rnd > 1 and (time.monotonic() - started) / 60 > args.max_minutes:
                print(f"[restore] --max-minutes reached; stopping after {rnd - 1} rounds", flush=True)
                break
            for source in sources:
                order = args.pipelines[source.engine]
                shift = (rnd - 1) % len(order)
                for pipeline in order[shift:] + order[:shift]:
                    run = bench.run_one(source, pipeline, rnd)
                    runs.append(run)
                    print(
                        f"[restore] round {rnd} {source.engine} {source.size_gb:g}GiB {pipeline:13s} wall "
                        f"{run.wall_s:8.2f}s exit {run.exit_code} rows {run.rows_ok} agent {run.agent_rss_mib} MiB "
                        f"spool {(run.spool_peak_bytes or 0) / MiB:.1f} MiB event {run.event_duration_s} s "
                        f"cpu {run.cpu_s:.1f}s server {run.server_cpu_s:.1f}s moto {run.moto_cpu_s:.1f}s "
                        f"rss {run.rss_mib} load {os.getloadavg()[0]:.2f} moto {moto.rss_mib():.0f}MiB"
                        + (f" ERROR {run.error}" if run.error else ""),
                        flush=True,
                    )
    facts["loadavg_end"] = os.getloadavg()
    rows = summarize(runs, list(wanted), args.pipelines)
    by_key = {
        (s.engine, s.size_gb): {
            "dump_bytes": s.dump_bytes,
            "stored_bytes": s.backup["bytes_stored"],
            "raw_bytes": s.backup.get("bytes_in"),
        }
        for s in sources
    }
    print()
    print(table(rows, by_key, args.jobs))
    print()
    print(cpu_table(rows, args.jobs))
    print(f"\nload average at start {facts['loadavg_start']}, at end {facts['loadavg_end']}; -j {args.jobs}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "when": datetime.now(UTC).isoformat(),
                    "argv": sys.argv[1:],
                    "machine": facts,
                    "sources": [asdict(s) for s in sources],
                    "runs": [asdict(r) for r in runs],
                    "summary": rows,
                },
                indent=2,
                default=str,
            )
        )
    return 1 if any(r.exit_code != 0 or r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
