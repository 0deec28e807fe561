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
import contextlib
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import datasets

MiB = 1024 * 1024
BUCKET = "bench-backups"
KMS_ALIAS = "alias/bench-backups"
AGENT = "bench-host"
BUS = "bench-bus"
REGION = "us-east-1"
VENV_BIN = Path(sys.executable).parent
PIPELINES = ("limit", "script", "zstd", "agent", "agent-l1", "agent-l3")
DEFAULT_PIPELINES = ("limit", "script", "zstd", "agent")
TARGETS = {
    "rss_mib": 96.0,  # agent peak RSS
    "wall_ratio": 1.4,  # agent wall / limit wall
    "rss_flat": 0.10,  # agent peak RSS, largest vs smallest size
}


# --------------------------------------------------------------------------- moto server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoProcess:
    """``moto_server`` in its own process on a free loopback port; reset between runs."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.key_arn = ""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> MotoProcess:
        moto = VENV_BIN / "moto_server"
        cmd = [str(moto), "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).close()  # noqa: S310 - loopback
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("moto_server exited at start") from None
                time.sleep(0.2)
        raise RuntimeError("moto_server did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def client(self, service: str) -> Any:
        import boto3

        session: Any = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
        )

    def reset(self) -> None:
        """Forget every object (moto keeps them in memory/spool), then recreate bucket, key, bus."""
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST")  # noqa: S310 - loopback
        urllib.request.urlopen(req, timeout=30).close()  # noqa: S310 - loopback
        self.client("s3").create_bucket(Bucket=BUCKET)
        kms = self.client("kms")
        key = kms.create_key(Description="bench")["KeyMetadata"]
        self.key_arn = key["Arn"]
        kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key["KeyId"])
        self.client("events").create_event_bus(Name=BUS)

    def cpu_s(self) -> float:
        """moto's CPU seconds so far (user + system)."""
        try:
            fields = Path(f"/proc/{self.proc.pid if self.proc else 0}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        return _status_kib(self.proc.pid if self.proc else 0).get("VmRSS", 0) / 1024

    def head(self, key: str) -> dict[str, Any]:
        return dict(self.client("s3").head_object(Bucket=BUCKET, Key=key))


# --------------------------------------------------------------------------- process-tree memory


def _status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                kids.extend(int(x) for x in fh.read().split())
    except OSError:
        pass
    return kids


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1
    return int(fields[11]) + int(fields[12])


def _backends(database: str) -> list[int]:
    """PostgreSQL backends serving ``database`` (their title is ``postgres: USER DB HOST(PORT) ...``)."""
    found = []
    needle = f" {database} ".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    title = fh.read(200)
            except OSError:
                continue
            if title.startswith(b"postgres: ") and needle in title:
                found.append(int(entry))
    return found


class TreeSampler(threading.Thread):
    """Polls /proc for a process tree: per command name, the highest VmHWM (kernel peak RSS) seen.

    Also follows the PostgreSQL backends serving ``database`` (they are not in the tree) and
    keeps their CPU ticks, so a run's CPU budget can include the server side of the dump.
    """

    def __init__(self, root: int, database: str | None = None, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.database = database
        self.interval = interval
        self.hwm_kib: dict[str, int] = {}
        self.backend_ticks: dict[int, int] = {}
        self._before = set(_backends(database)) if database else set()
        self._halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            stack = [self.root]
            while stack:
                pid = stack.pop()
                status = _status_kib(pid)
                if status:
                    name = _comm(pid)
                    self.hwm_kib[name] = max(self.hwm_kib.get(name, 0), status.get("VmHWM", 0))
                stack.extend(_children(pid))
            if self.database and n % 5 == 0:
                for pid in _backends(self.database):
                    if pid not in self._before:
                        self.backend_ticks[pid] = max(self.backend_ticks.get(pid, 0), _cpu_ticks(pid))
            n += 1
            self._halt.wait(self.interval)

    @property
    def backend_cpu_s(self) -> float:
        return sum(self.backend_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._halt.set()
        self.join()


# --------------------------------------------------------------------------- runs


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


def run_measured(
    cmd: list[str], *, env: dict[str, str], timeout: float, database: str | None = None
) -> tuple[Any, ...]:
    """Run ``cmd`` in its own process group; wall time, exit code, stdout, stderr, rusage, tree HWMs."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        sampler = TreeSampler(0, database)
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        sampler.root = proc.pid
        sampler.start()
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
        out.seek(0)
        err.seek(0)
        return (
            wall,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage,
            sampler,
        )


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
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
        env.update(
            AWS_ENDPOINT_URL=self.moto.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fake credentials
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        )
        return env

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


# --------------------------------------------------------------------------- reporting


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: list[Run], sizes: list[float], pipelines: list[str]) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        ok = [r for r in runs if r.size_gb == size and r.exit_code == 0]
        limit = _median([r.wall_s for r in ok if r.pipeline == "limit"])
        for pipeline in pipelines:
            mine = [r for r in ok if r.pipeline == pipeline]
            failed = sum(1 for r in runs if r.size_gb == size and r.pipeline == pipeline and r.exit_code != 0)
            wall = _median([r.wall_s for r in mine])
            stored = _median([float(r.stored_bytes) for r in mine if r.stored_bytes is not None])
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
                    "cpu_s": _median([r.cpu_s for r in mine]),
                    "backend_cpu_s": _median([r.backend_cpu_s for r in mine]),
                    "moto_cpu_s": _median([r.moto_cpu_s for r in mine]),
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


def machine_facts() -> dict[str, Any]:
    def cmd(*argv: str) -> str:
        try:
            return (
                subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20)
                .stdout.strip()
                .splitlines()[0]
            )
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    model = "?"
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "loadavg_start": os.getloadavg(),
        "mem_total_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "pg_dump": cmd("pg_dump", "--version"),
        "server": datasets.psql("show server_version"),
        "zstd": cmd("zstd", "--version"),
        "aws": cmd(str(VENV_BIN / "aws"), "--version"),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }


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
    facts = machine_facts()
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
