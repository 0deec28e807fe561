"""What the benchmarks share: a moto server process, /proc samplers, measured runs, machine facts.

``bench.agent_stream`` (backup) and ``bench.restore`` (restore) both run the pipelines they compare
against ONE ``moto_server`` in its own process on a free loopback port (so its CPU does not share
the agent's GIL), time each run from process start to exit (``wait4``: exit status, CPU and
``ru_maxrss``), and sample the process tree's peak RSS (kernel ``VmHWM``) from ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.request
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
BUCKET = "bench-backups"
KMS_ALIAS = "alias/bench-backups"
AGENT = "bench-host"
BUS = "bench-bus"
REGION = "us-east-1"
VENV_BIN = Path(sys.executable).parent


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

    def client(self, service: str, **config: Any) -> Any:
        """A boto3 client for moto; ``config`` goes to botocore's ``Config`` (e.g. signature_version)."""
        import boto3
        from botocore.config import Config

        session: Any = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's fake credentials
            config=Config(**config) if config else None,
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


# The measured command is started and reaped by this small process (the interpreter without site,
# ~9 MiB), not by the benchmark itself: a child spawned straight from here would start with THIS
# process's peak RSS in its ru_maxrss (vfork/fork + exec carry the parent's high-water mark into the
# child's), ~100 MiB once boto3 and the contract models are imported, more than the agent's own.
_SPAWNER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a timeout's SIGTERM is for the command; this one reports
fd = int(sys.argv[1])
t0 = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ, setsigdef=(signal.SIGTERM,))
os.write(fd, b"%d\\n" % pid)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
os.write(fd, b"%d %r %r %r %d\\n" % (status, wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss))
"""
GRACE_S = 10.0  # after a timeout's SIGTERM, the command's time to clean up before SIGKILL


def run_measured(
    cmd: list[str], *, env: dict[str, str], timeout: float, database: str | None = None
) -> tuple[Any, ...]:
    """Run ``cmd`` in its own process group; wall time, exit code, stdout, stderr, rusage, tree HWMs.

    The rusage (``ru_utime``, ``ru_stime``, ``ru_maxrss``) is ``wait4``'s for ``cmd`` and the children
    it reaped; the wall time is from its spawn to its exit (both taken by the small spawner). After
    ``timeout`` seconds the group gets SIGTERM (the agent then stops its restore or dump and cleans
    up), and SIGKILL ``GRACE_S`` later."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        sampler = TreeSampler(0, database)
        read_fd, write_fd = os.pipe()
        spawner = [sys.executable, "-I", "-S", "-c", _SPAWNER, str(write_fd), *cmd]
        proc = subprocess.Popen(spawner, stdout=out, stderr=err, env=env, start_new_session=True, pass_fds=(write_fd,))
        os.close(write_fd)
        done = threading.Event()

        def expire() -> None:
            if done.wait(timeout):
                return
            for sig, grace in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 0.0)):
                if done.is_set():
                    return
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                done.wait(grace)

        timer = threading.Thread(target=expire, daemon=True)
        timer.start()
        usage: Any
        try:
            with os.fdopen(read_fd, "rb") as report:
                first = report.readline().strip()
                if first:
                    sampler.root = int(first)
                    sampler.start()
                last = report.readline().split()
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted (Ctrl-C): leave nothing running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            done.set()
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if len(last) == 5:  # the command's own: its exit status, wall time and rusage
            code = os.waitstatus_to_exitcode(int(last[0]))
            wall = float(last[1])
            usage = types.SimpleNamespace(ru_utime=float(last[2]), ru_stime=float(last[3]), ru_maxrss=int(last[4]))
        if sampler.is_alive():
            sampler.stop()
        out.seek(0)
        err.seek(0)
        return (
            wall,
            code,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage,
            sampler,
        )


class DirSampler(threading.Thread):
    """Polls a directory tree: the highest number of bytes (allocated blocks) it held while sampled."""

    def __init__(self, root: Path, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_bytes = 0
        self._halt = threading.Event()

    def sample(self) -> int:
        total = 0
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(directory, name)).st_blocks * 512
        self.peak_bytes = max(self.peak_bytes, total)
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def pids_named(comm: str) -> list[int]:
    """Every process whose command name is ``comm`` (e.g. the ``mariadbd`` server)."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _comm(int(entry)) == comm]


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes used so far; vanished ones count 0."""
    return sum(max(0, _cpu_ticks(pid)) for pid in pids) / os.sysconf("SC_CLK_TCK")


def aws_env(endpoint_url: str) -> dict[str, str]:
    """This environment without AWS_* / PG* settings, pointed at moto with its fake credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fake credentials
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    )
    return env


# --------------------------------------------------------------------------- reporting helpers


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def first_line(*argv: str) -> str:
    """The first output line of a version command, or ``?``."""
    try:
        return (
            subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20).stdout.strip().splitlines()[0]
        )
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def machine_facts(**tools: str) -> dict[str, Any]:
    """CPU, memory, load and kernel of this machine, plus the tool versions the caller names."""
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
        **tools,
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }
