"""Throwaway PostgreSQL clusters for PITR tests and benchmarks: ``initdb`` in a temporary directory, on
a free loopback port, with WAL archiving configured as a host owner would (docs/pitr.md).

PostgreSQL refuses to run as root; when the tests run as root, the cluster's files belong to the
``postgres`` OS user and every server-side command runs through ``runuser -u postgres``
(``server_user``), as the agent's ``server_user`` setting does for a restored cluster.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def server_user() -> str | None:
    """The OS user a server must run as here: None when we are not root, else ``postgres``."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


def unavailable_reason() -> str | None:
    """Why throwaway clusters cannot run here (for pytest.skip), or None."""
    if pg_bin_dir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0 and server_user() is None:
        return "running as root with no postgres OS user to own a throwaway cluster"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_server_user(argv: Sequence[str], user: str | None = None) -> list[str]:
    user = server_user() if user is None else user
    return ["runuser", "-u", user, "--", *argv] if user else list(argv)


def owned_dir(prefix: str, user: str | None = None) -> Path:
    """A fresh 0700 directory the server user owns (and root, when we are root, can still use)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    user = server_user() if user is None else user
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


@dataclass
class Cluster:
    """One running (or stopped) throwaway cluster."""

    root: Path
    port: int
    bin_dir: Path
    user: str | None = server_user()
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            as_server_user(argv, self.user or ""),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            cwd=self.root,
        )

    def initdb(self, extra: Sequence[str] = ()) -> None:
        self.run([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N", *extra])

    def configure(self, **settings: str) -> None:
        """Append settings to postgresql.conf (values are written as given: quote strings yourself)."""
        self.settings.update(settings)
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(lines)

    def start(self, timeout: float = 60) -> None:
        self.run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                f"{timeout:.0f}",
                "start",
            ],
            timeout=timeout + 10,
        )

    def stop(self, mode: str = "fast") -> None:
        self.run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def running(self) -> bool:
        return self.run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "status"], check=False).returncode == 0

    def sql(self, statement: str, *, database: str = "postgres", check: bool = True) -> str:
        """Run SQL through psql over TCP; the unaligned, tuples-only output."""
        done = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-Atq",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                statement,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def server_log(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def wait_for(self, statement: str, expected: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                last = self.sql(statement)
                if last == expected:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{statement!r} returned {last!r}, not {expected!r}, within {timeout}s")


def new_cluster(
    *,
    archive_command: str | None = None,
    archive_timeout: str = "0",
    settings: dict[str, str] | None = None,
    prefix: str = "pitr-cluster-",
) -> Cluster:
    """An initialised, configured (not started) cluster: wal_level replica, archiving on when
    ``archive_command`` is given (``%p``/``%f`` as PostgreSQL expands them), fsync off (tests only)."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise RuntimeError(unavailable_reason() or "no PostgreSQL binaries")
    cluster = Cluster(owned_dir(prefix), free_port(), bin_dir)
    cluster.initdb()
    wanted = {
        "port": str(cluster.port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{cluster.root}'",
        "wal_level": "replica",
        "max_wal_senders": "4",
        "fsync": "off",
        "full_page_writes": "on",
        "logging_collector": "off",
        "archive_mode": "on" if archive_command else "off",
        "archive_timeout": archive_timeout,
    }
    if archive_command:
        wanted["archive_command"] = "'" + archive_command.replace("'", "''") + "'"
    wanted.update(settings or {})
    cluster.configure(**wanted)
    return cluster


@contextlib.contextmanager
def running_cluster(**kwargs: object) -> Iterator[Cluster]:
    """``new_cluster(**kwargs)`` started; stopped (immediate) and removed afterwards."""
    cluster = new_cluster(**kwargs)  # type: ignore[arg-type]
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(cluster.root, ignore_errors=True)
