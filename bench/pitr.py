"""Benchmark: point-in-time recovery for PostgreSQL — base backups, WAL archiving, recovery.

Three questions, each answered against a baseline run side by side in interleaved rounds on throwaway
clusters (``tests.pitr.cluster``; PostgreSQL 15 binaries) and ONE moto server in its own process
(``bench.harness``):

  base backup   backup-agent backup TARGET (pg_basebackup tar → manifest check → zstd → SHA-256 →
                multipart SSE-KMS) vs ``pg_basebackup -D - -Ft -X none -c fast > /dev/null``
  WAL push      archive_command = backup-agent wal-push (compress, SSE-KMS, conditional PUT, journal,
                WAL Archived event) vs ``cp %p DIR/%f``, under a pgbench write load: WAL files
                archived per second, and the backlog (``.ready`` files) the load leaves behind
  recovery      restore_command = backup-agent wal-fetch (presigned GET, SHA-256, zstd -d) vs
                ``cp DIR/%f %p``: the time to replay the WAL the load wrote onto a base backup, from
                server start to promotion

    python -m bench.pitr                              # make bench-pitr
    python -m bench.pitr --scale 5 --load-s 10 --rounds 1   # a minute or two: check the harness

Results: printed, and written to bench/results/pitr.json (every run, medians, machine facts).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import AGENT, BUCKET, BUS, REGION, VENV_BIN, MiB, MotoProcess, aws_env, machine_facts, median
from bench.pitr_recovery import BASE_TAR, recovery_round
from tests.pitr.cluster import Cluster, new_cluster, owned_dir, unavailable_reason
from tests.pitr.wal_world import server_python

TARGET = "pitr-bench"
RESULTS = Path(__file__).parent / "results" / "pitr.json"


@dataclass
class Run:
    part: str  # base-backup | wal-push | recovery
    pipeline: str  # baseline | agent
    round: int
    seconds: float
    ok: bool
    facts: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def agent_config(workdir: Path, moto: MotoProcess, cluster: Cluster) -> Path:
    """The agent's config for the bench cluster, in a directory the server user owns (its
    archive_command runs wal-push as that user)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if cluster.user:
        shutil.chown(workdir, cluster.user)
    path = workdir / "agent.yaml"
    path.write_text(
        f"agent: {AGENT}\nregion: {REGION}\n"
        f"queue_url: {moto.url}/123456789012/{AGENT}-jobs\n"
        f"bus_name: {BUS}\nkms_key_id: {moto.key_arn}\nbucket: {BUCKET}\n"
        f"state_dir: {workdir / 'state'}\n"
        f"targets:\n  {TARGET}:\n    engine: postgresql-physical\n    host: 127.0.0.1\n"
        f"    port: {cluster.port}\n    user: postgres\n",
        encoding="utf-8",
    )
    return path


def wal_push_command(config: Path, env: dict[str, str]) -> str:
    """The archive_command the docs give, with the bench's AWS environment (it runs as the server user)."""
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()) if k.startswith("AWS_"))
    agent = shlex.quote(str(server_python(config.parent))) + " -m backup_agent.entry"
    return f"env {exports} {agent} --config {shlex.quote(str(config))} wal-push --target {TARGET} %p"


def pgbench(cluster: Cluster, *argv: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(cluster.bin_dir / "pgbench"),
        "-h",
        "127.0.0.1",
        "-p",
        str(cluster.port),
        "-U",
        "postgres",
        *argv,
        "postgres",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
    return done


def data_bytes(cluster: Cluster) -> int:
    return int(cluster.sql("SELECT sum(pg_database_size(datname)) FROM pg_database"))


# --------------------------------------------------------------------------- base backups


def base_backup_round(
    args: argparse.Namespace, moto: MotoProcess, cluster: Cluster, config: Path, rnd: int
) -> list[Run]:
    env = aws_env(moto.url)
    size = data_bytes(cluster)
    baseline = (
        f"{shlex.quote(str(cluster.bin_dir / 'pg_basebackup'))} -h 127.0.0.1 -p {cluster.port} -U postgres"
        " -D - -Ft -X none -c fast --manifest-checksums=SHA256 > /dev/null"
    )
    commands = {
        "baseline": ["sh", "-c", baseline],
        "agent": [str(VENV_BIN / "backup-agent"), "--config", str(config), "backup", TARGET],
    }
    order = list(commands) if rnd % 2 == 0 else list(reversed(commands))
    runs = []
    for pipeline in order:
        t0 = time.perf_counter()
        done = subprocess.run(
            commands[pipeline], capture_output=True, text=True, env=env, timeout=args.timeout, check=False
        )
        seconds = time.perf_counter() - t0
        runs.append(
            Run(
                "base-backup",
                pipeline,
                rnd,
                seconds,
                done.returncode == 0,
                {"data_bytes": size, "mib_per_s": size / MiB / seconds},
                done.stderr[-2000:] if done.returncode else "",
            )
        )
    return runs


# --------------------------------------------------------------------------- WAL push under load


def ready_files(cluster: Cluster) -> int:
    status = cluster.data / "pg_wal" / "archive_status"
    return sum(1 for p in status.iterdir() if p.name.endswith(".ready"))


def wal_push_round(args: argparse.Namespace, moto: MotoProcess, workdir: Path, rnd: int) -> tuple[list[Run], Any]:
    """Each pipeline archives a fresh cluster under the same pgbench load; returns the runs and the
    agent's cluster (kept for the recovery part)."""
    runs: list[Run] = []
    kept: Any = None
    order = ["baseline", "agent"] if rnd % 2 == 0 else ["agent", "baseline"]
    for pipeline in order:
        if pipeline == "agent":  # (only the agent uses moto; its WAL stays there for the recovery part)
            moto.reset()
        archive = owned_dir("pitr-bench-archive-")
        cluster = new_cluster(archive_command="true", archive_timeout="60", prefix="pitr-bench-")
        # a fresh state dir per cluster: a new cluster reuses the old one's WAL file names with other bytes,
        # which wal-push's journal (rightly) refuses
        config = agent_config(workdir / f"{pipeline}-{rnd}", moto, cluster) if pipeline == "agent" else None
        command = (
            wal_push_command(config, aws_env(moto.url))
            if config is not None
            else f"cp %p {shlex.quote(str(archive))}/%f"
        )
        cluster.configure(archive_command="'" + command.replace("'", "''") + "'")
        cluster.start()
        try:
            pgbench(cluster, "-i", "-q", "-s", str(args.scale))
            cluster.sql("CHECKPOINT")
            if pipeline == "agent" and args.recovery:  # the base the recovery part replays this load onto
                with open(workdir / BASE_TAR, "wb") as out:
                    subprocess.run(
                        [
                            str(cluster.bin_dir / "pg_basebackup"),
                            "-h",
                            "127.0.0.1",
                            "-p",
                            str(cluster.port),
                            "-U",
                            "postgres",
                            "-D",
                            "-",
                            "-Ft",
                            "-X",
                            "none",
                            "-c",
                            "fast",
                            "--manifest-checksums=SHA256",
                        ],
                        stdout=out,
                        check=True,
                        timeout=args.timeout,
                    )
            start_lsn = cluster.sql("SELECT pg_current_wal_lsn()")
            archived_before = int(cluster.sql("SELECT archived_count FROM pg_stat_archiver"))
            t0 = time.perf_counter()
            pgbench(cluster, "-N", "-c", "4", "-j", "2", "-T", str(args.load_s))
            load_s = time.perf_counter() - t0
            backlog_at_end = ready_files(cluster)
            cluster.sql("SELECT pg_switch_wal()")
            deadline = time.monotonic() + args.timeout
            while ready_files(cluster) and time.monotonic() < deadline:
                time.sleep(0.1)
            total_s = time.perf_counter() - t0
            archived = int(cluster.sql("SELECT archived_count FROM pg_stat_archiver")) - archived_before
            failed = int(cluster.sql("SELECT failed_count FROM pg_stat_archiver"))
            wal_bytes = int(cluster.sql(f"SELECT pg_current_wal_lsn() - '{start_lsn}'::pg_lsn"))
            runs.append(
                Run(
                    "wal-push",
                    pipeline,
                    rnd,
                    total_s,
                    ready_files(cluster) == 0 and failed == 0,
                    {
                        "load_s": round(load_s, 2),
                        "wal_mib": round(wal_bytes / MiB, 1),
                        "files_archived": archived,
                        "files_per_s": round(archived / total_s, 2),
                        "backlog_at_load_end": backlog_at_end,
                        "drain_s": round(total_s - load_s, 2),
                        "failed": failed,
                        **drain_capacity(cluster, command, args),
                    },
                )
            )
        except BaseException:  # leave no server behind
            cluster.stop("immediate")
            shutil.rmtree(cluster.root, ignore_errors=True)
            raise
        if pipeline == "agent" and args.recovery:
            kept = (cluster, config, archive)
        else:
            cluster.stop("immediate")
            shutil.rmtree(cluster.root, ignore_errors=True)
            shutil.rmtree(archive, ignore_errors=True)
    return runs, kept


def drain_capacity(cluster: Cluster, command: str, args: argparse.Namespace) -> dict[str, Any]:
    """Archiving's capacity, not the load's pace: with archive_command unset, pgbench -i writes a backlog
    of WAL files; then the command is set again and the time to archive them all is measured."""
    cluster.sql("ALTER SYSTEM SET archive_command = ''")
    cluster.sql("SELECT pg_reload_conf()")
    pgbench(cluster, "-i", "-q", "-s", str(args.scale))
    cluster.sql("SELECT pg_switch_wal()")
    time.sleep(0.5)
    backlog = ready_files(cluster)
    t0 = time.perf_counter()
    cluster.sql("ALTER SYSTEM SET archive_command = '" + command.replace("'", "''") + "'")
    cluster.sql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + args.timeout
    while ready_files(cluster) and time.monotonic() < deadline:
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    left = ready_files(cluster)
    return {  # every .ready file gone = archived (pg_stat_archiver's counters are reported lazily)
        "burst_backlog": backlog,
        "burst_left": left,
        "burst_s": round(seconds, 2),
        "burst_files_per_s": round((backlog - left) / seconds, 1) if seconds else None,
    }


# --------------------------------------------------------------------------- main


def summarize(runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part, metric in (
        ("base-backup", "mib_per_s"),
        ("wal-push", "burst_files_per_s"),
        ("recovery", "wal_mib_per_s"),
    ):
        for pipeline in ("baseline", "agent"):
            values = [r.facts[metric] for r in runs if r.part == part and r.pipeline == pipeline and r.ok]
            out.setdefault(part, {})[pipeline] = {
                metric: median(values),
                "seconds": median([r.seconds for r in runs if r.part == part and r.pipeline == pipeline and r.ok]),
            }
        base, agent = out[part]["baseline"][metric], out[part]["agent"][metric]
        out[part]["agent_vs_baseline"] = round(agent / base, 2) if base and agent else None
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pitr", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=int, default=20, help="pgbench scale of the backed-up data (~15 MiB each)")
    parser.add_argument("--load-s", type=int, default=30, help="seconds of pgbench write load per WAL round")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--no-recovery", dest="recovery", action="store_false", help="skip the recovery part")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"bench.pitr: cannot run here: {reason}", file=sys.stderr)
        return 2
    runs: list[Run] = []
    workdir = owned_dir("pitr-bench-work-")
    with MotoProcess() as moto:
        moto.reset()
        cluster = new_cluster(archive_command="true", prefix="pitr-bench-base-")
        cluster.start()
        try:
            pgbench(cluster, "-i", "-q", "-s", str(args.scale))
            cluster.sql("CHECKPOINT")
            config = agent_config(workdir / "base", moto, cluster)
            for rnd in range(args.rounds):
                runs += base_backup_round(args, moto, cluster, config, rnd)
        finally:
            cluster.stop("immediate")
            shutil.rmtree(cluster.root, ignore_errors=True)
        for rnd in range(args.rounds):
            pushed, kept = wal_push_round(args, moto, workdir, rnd)
            runs += pushed
            if kept is not None:
                runs += recovery_round(args, moto, workdir, kept, rnd)
    summary = summarize(runs)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "args": vars(args),
                "machine": machine_facts(pg_basebackup=str(cluster.bin_dir / "pg_basebackup")),
                "summary": summary,
                "runs": [asdict(r) for r in runs],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    print(json.dumps(summary, indent=2))
    for r in runs:
        if not r.ok:
            print(f"FAILED {r.part} {r.pipeline} round {r.round}: {r.error[-500:]}", file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
