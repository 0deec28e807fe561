"""Benchmark: the agent's streaming backup against the shell pipelines people actually run.

Side by side, against ONE moto S3 server (a separate process, so its CPU does not share the
agent's GIL), on a realistic PostgreSQL database (``bench.datasets``), in interleaved rounds:
each round runs every pipeline once per database size, so machine drift hits all alike, and
the first pipeline of each round rotates. Reported per pipeline and size: median wall time,
ratio to the source limit, stored bytes and peak RSS of the uploading process.

Pipelines:
  limit   pg_dump -Fc -Z0 > /dev/null                      (what the source can deliver)
  script  pg_dump -Fc | aws s3 cp - s3://...               (the common script; zlib level 6)
  zstd    pg_dump -Fc -Z0 | zstd -T0 | aws s3 cp - s3://... (zstd CLI default level 3)
  agent   backup-agent backup TARGET                        (the config's default compression, SSE-KMS)
  agent-l1, agent-l3 (optional)                             (the agent with zstd level 1 / level 3)

    python -m bench.agent_stream                       # sizes 1,4 GiB, 3 rounds (make bench-agent)
    python -m bench.agent_stream --sizes 1 --rounds 1  # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import datasets
from bench.agent_stream_results import Run, cpu_table, summarize, table, verdicts
from bench.harness import (
    AGENT,
    BUCKET,
    BUS,
    REGION,
    VENV_BIN,
    MiB,
    MotoProcess,
    aws_env,
    first_line,
    machine_facts,
    run_measured,
)

PIPELINES = ("limit", "script", "zstd", "agent", "agent-l1", "agent-l3")
DEFAULT_PIPELINES = ("limit", "script", "zstd", "agent")


# --------------------------------------------------------------------------- runs


class Bench:
    def __init__(self, args: argparse.Namespace, moto: MotoProcess, workdir: Path) -> None:
        self.args = args
        self.moto = moto
        self.workdir = workdir
        self.env = self._env()
        self.config_paths = {name: workdir / f"{name}.yaml" for name in ("agent", "agent-l1", "agent-l3")}
        self.databases: dict[float, str] = {}
        self.aws = str(VENV_BIN / "aws") if (VENV_BIN / "aws").exists() else "aws"
        self.agent = str(VENV_BIN / "backup-agent")

    def _env(self) -> dict[str, str]:
        return aws_env(self.moto.url)

    def write_config(self, databases: dict[float, str]) -> None:
        self.databases = databases
        targets = "".join(
            f"  {self._target(size)}:\n    engine: postgresql\n    host: {datasets.PG_HOST}\n"
            f"    port: {datasets.PG_PORT}\n    user: {datasets.PG_USER}\n    database: {name}\n"
            for size, name in databases.items()
        )
        for pipeline, path in self.config_paths.items():
            level = {"agent-l1": 1, "agent-l3": 3}.get(pipeline, self.args.agent_level)
            settings = [f"  level: {level}\n"] if level is not None else []
            if self.args.agent_threads is not None:
                settings.append(f"  threads: {self.args.agent_threads}\n")
            compression = "compression:\n" + "".join(settings) if settings else ""
            upload = f"upload:\n  parts_in_flight: {self.args.parts_in_flight}\n" if self.args.parts_in_flight else ""
            path.write_text(
                f"agent: {AGENT}\nregion: {REGION}\n"
                f"queue_url: {self.moto.url}/123456789012/{AGENT}-jobs\n"
                f"bus_name: {BUS}\nkms_key_id: {self.moto.key_arn}\nbucket: {BUCKET}\n"
                f"state_dir: {self.workdir / 'state'}\n"
                f"{compression}{upload}"
                f"targets:\n{targets}",
                encoding="utf-8",
            )

    @staticmethod
    def _target(size: float) -> str:
        return "pg-" + f"{size:g}".replace(".", "-") + "g"

    def _pg(self, database: str, compress: str) -> str:
        return shlex.join(
            [
                "pg_dump",
                "-h",
                datasets.PG_HOST,
                "-p",
                datasets.PG_PORT,
                "-U",
                datasets.PG_USER,
                "-Fc",
                *compress.split(),
                database,
            ]
        )

    def _s3cp(self, key: str) -> str:
        return shlex.join(
            [
                self.aws,
                "s3",
                "cp",
                "-",
                f"s3://{BUCKET}/{key}",
                "--endpoint-url",
                self.moto.url,
                "--sse",
                "aws:kms",
                "--sse-kms-key-id",
                self.moto.key_arn,
                "--only-show-errors",
            ]
        )

    def command(self, pipeline: str, size: float, database: str) -> tuple[list[str], str | None]:
        key = f"bench/{pipeline}/{database}.pgdump"
        if pipeline == "limit":
            return ["bash", "-c", f"set -o pipefail; {self._pg(database, '-Z0')} > /dev/null"], None
        if pipeline == "script":
            return ["bash", "-c", f"set -o pipefail; {self._pg(database, '')} | {self._s3cp(key)}"], key
        if pipeline == "zstd":
            return [
                "bash",
                "-c",
                f"set -o pipefail; {self._pg(database, '-Z0')} | zstd -q -T0 | {self._s3cp(key + '.zst')}",
            ], key + ".zst"
        if pipeline in self.config_paths:
            config = str(self.config_paths[pipeline])
            return [self.agent, "--json-logs", "--config", config, "backup", self._target(size)], None
        raise ValueError(pipeline)

    def run_one(self, pipeline: str, size: float, database: str, rnd: int) -> Run:
        self.moto.reset()  # a new KMS key each time: the configs name it by ARN
        self.write_config(self.databases)
        cmd, key = self.command(pipeline, size, database)
        env = self.env
        if pipeline.startswith("agent") and self.args.agent_env:
            env = {**env, **dict(item.split("=", 1) for item in self.args.agent_env)}
        moto_cpu = self.moto.cpu_s()
        wall, code, out, err, usage, sampler = run_measured(cmd, env=env, timeout=self.args.timeout, database=database)
        hwm = sampler.hwm_kib
        run = Run(pipeline, size, rnd, round(wall, 3), code)
        run.cpu_s = round(usage.ru_utime + usage.ru_stime, 2)
        run.moto_cpu_s = round(self.moto.cpu_s() - moto_cpu, 2)
        run.backend_cpu_s = round(sampler.backend_cpu_s, 2)
        run.rss_mib = {name: round(kib / 1024, 1) for name, kib in sorted(hwm.items())}
        if code != 0:
            run.error = (err or out).strip()[-600:]
            return run
        if pipeline.startswith("agent"):
            try:
                event = json.loads(out[out.index("{") :])
            except ValueError:
                run.error = "agent printed no event: " + out[-300:]
                return run
            key = event.get("key")
            run.bytes_in = event.get("bytes_in")
            # the agent's own process: wait4's ru_maxrss covers it and its reaped children (pg_dump);
            # when pg_dump's sampled peak is below it, it is exactly the agent's peak.
            exact = usage.ru_maxrss / 1024
            pg = run.rss_mib.get("pg_dump", 0.0)
            sampled = max((v for n, v in run.rss_mib.items() if n != "pg_dump"), default=0.0)
            run.uploader_rss_mib = round(exact if exact > pg else sampled, 1)
        elif pipeline in ("script", "zstd"):
            run.uploader_rss_mib = run.rss_mib.get("aws")
        if key:
            head = self.moto.head(key)
            run.stored_bytes = int(head["ContentLength"])
            run.sse = head.get("ServerSideEncryption")
        return run

    def warm(self, database: str) -> int:
        """Untimed pass that fills the page cache and measures the -Z0 dump size."""
        cmd = f"set -o pipefail; {self._pg(database, '-Z0')} | wc -c"
        out = subprocess.run(
            ["bash", "-c", cmd], capture_output=True, text=True, env=self.env, check=True, timeout=self.args.timeout
        )
        return int(out.stdout.strip())


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.agent_stream", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--sizes", type=datasets.parse_sizes, default=[1.0, 4.0], help="database sizes in GiB (default 1,4)")
    p.add_argument(
        "--database",
        action="append",
        default=[],
        metavar="NAME",
        help="benchmark this existing database instead of generated ones (repeatable; sizes then label them)",
    )
    p.add_argument("--skip-generate", action="store_true", help="do not create/grow the databases; they must exist")
    p.add_argument(
        "--pipelines",
        default=",".join(DEFAULT_PIPELINES),
        help=f"comma-separated, from {','.join(PIPELINES)} (default {','.join(DEFAULT_PIPELINES)}); "
        "agent-l1 / agent-l3 are the agent with zstd level 1 / 3",
    )
    p.add_argument(
        "--agent-level", type=int, help="agent zstd level (default: the config default, dump-tuned parameters)"
    )
    p.add_argument("--agent-threads", type=int, help="agent zstd threads (default: the config default)")
    p.add_argument("--parts-in-flight", type=int, help="agent parts in flight (default: the config default)")
    p.add_argument(
        "--agent-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the agent only, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    p.add_argument("--timeout", type=float, default=900, help="kill a single run after this many seconds")
    p.add_argument("--max-minutes", type=float, default=60, help="start no new round after this many minutes")
    p.add_argument(
        "--json",
        type=Path,
        default=Path("bench/results/agent_stream.json"),
        help="also write every run and the summary here (default bench/results/agent_stream.json)",
    )
    args = p.parse_args(argv)
    args.pipelines = [x.strip() for x in args.pipelines.split(",") if x.strip()]
    unknown = set(args.pipelines) - set(PIPELINES)
    if unknown:
        p.error(f"unknown pipelines {sorted(unknown)}; choose from {', '.join(PIPELINES)}")
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    if args.database and len(args.database) != len(args.sizes):
        if args.sizes == [1.0, 4.0] and len(args.database) == 1:
            args.sizes = [1.0]
        else:
            p.error("give one --sizes value per --database (they label the rows)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if args.database:
        databases = dict(zip(args.sizes, args.database, strict=True))
    else:
        if not args.skip_generate:
            datasets.ensure_all(args.sizes)
        databases = {s: datasets.database_name(s) for s in args.sizes}
    for name in databases.values():
        if not datasets.exists(name):
            print(f"database {name} does not exist (run without --skip-generate, or python -m bench.datasets)")
            return 2
    facts = machine_facts(
        pg_dump=first_line("pg_dump", "--version"),
        server=datasets.psql("show server_version"),
        zstd=first_line("zstd", "--version"),
        aws=first_line(str(VENV_BIN / "aws"), "--version"),
    )
    print(f"[bench] machine: {facts}", flush=True)
    runs: list[Run] = []
    dump_bytes: dict[float, int] = {}
    db_facts: dict[float, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp, MotoProcess() as moto:
        bench = Bench(args, moto, Path(tmp))
        bench.write_config(databases)
        for size, name in databases.items():
            dump_bytes[size] = bench.warm(name)
            db_facts[size] = asdict(datasets.info(name)) if name.startswith("bench_") else {"database": name}
            print(f"[bench] {name}: pg_dump -Fc -Z0 = {dump_bytes[size] / MiB:,.0f} MiB", flush=True)
        order = list(args.pipelines)
        for rnd in range(1, args.rounds + 1):
            if rnd > 1 and (time.monotonic() - started) / 60 > args.max_minutes:
                print(f"[bench] --max-minutes reached; stopping after {rnd - 1} rounds", flush=True)
                break
            shift = (rnd - 1) % len(order)
            this_round = order[shift:] + order[:shift]
            for size, name in databases.items():
                for pipeline in this_round:
                    run = bench.run_one(pipeline, size, name, rnd)
                    runs.append(run)
                    print(
                        f"[bench] round {rnd} {size:g}GiB {pipeline:7s} wall {run.wall_s:7.2f}s exit {run.exit_code} "
                        f"stored {run.stored_bytes or 0:>13,} cpu {run.cpu_s:.1f}s backend {run.backend_cpu_s:.1f}s "
                        f"moto {run.moto_cpu_s:.1f}s "
                        f"rss {run.rss_mib} "
                        f"load {os.getloadavg()[0]:.2f} moto {moto.rss_mib():.0f}MiB"
                        + (f" ERROR {run.error}" if run.error else ""),
                        flush=True,
                    )
    facts["loadavg_end"] = os.getloadavg()
    rows = summarize(runs, list(databases), args.pipelines)
    print()
    print(table(rows, dump_bytes))
    print()
    print(cpu_table(rows))
    print()
    for line in verdicts(rows):
        print(line)
    print(
        f"\nload average at start {facts['loadavg_start']}, at end {facts['loadavg_end']}; "
        f"agent zstd level {args.agent_level or 'config default'}, threads {args.agent_threads or 'config default'}, "
        f"parts in flight {args.parts_in_flight or 'config default'}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "when": datetime.now(UTC).isoformat(),
                    "argv": sys.argv[1:],
                    "machine": facts,
                    "databases": db_facts,
                    "dump_bytes": dump_bytes,
                    "runs": [asdict(r) for r in runs],
                    "summary": rows,
                },
                indent=2,
                default=str,
            )
        )
    return 1 if any(r.exit_code != 0 for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
