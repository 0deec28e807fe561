"""A restored cluster's server: where its binaries are, starting and stopping it as its OS user, and
querying it over its private socket while it recovers.

``Server.wait`` polls a condition until it holds, and turns a server that died on the way into an
``EngineError`` carrying the FATAL line of its log (``LOG_FILE`` in the data directory) and, for the
reasons a point-in-time restore commonly stops for, the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from backup_agent import proc
from backup_agent.engines import pg_extract
from backup_agent.engines.base import EngineError
from backup_agent.engines.pg_extract import ServerUser
from backup_agent.engines.pg_physical_config import PostgresPhysicalConfig
from backup_agent.engines.postgresql import major_version

LOG_FILE = "backup-agent-restore.log"
_FATAL = re.compile(r"^.*\b(FATAL|PANIC):\s+(.*)$", re.MULTILINE)
_HINTS = {
    "recovery aborted because of insufficient parameter settings": (
        " (a setting is lower than the source's. Fix: set it in the destination's postgresql.conf as the source has it)"
    ),
    "recovery ended before configured recovery target was reached": (
        " (the archived WAL ends before the target time. Fix: wait until the archive reaches it, see the lag in"
        " backupctl status, or choose an earlier time)"
    ),
    "requested recovery stop point is before consistent recovery point": (
        " (the target lies inside the base backup. Fix: choose a time after the backup ended, or an earlier base"
        " backup)"
    ),
    "could not locate required checkpoint record": (
        " (restore_command could not fetch the backup's first WAL file. Fix: make sure the archive holds it)"
    ),
}
_RECORDED = {  # pg_controldata's label -> the setting a hot standby needs at least as high as its source's
    "max_connections setting": "max_connections",
    "max_worker_processes setting": "max_worker_processes",
    "max_wal_senders setting": "max_wal_senders",
    "max_prepared_xacts setting": "max_prepared_transactions",
    "max_locks_per_xact setting": "max_locks_per_transaction",
}
_POLL_S = 0.2
_STUCK = "hot standby is not possible because of insufficient parameter settings"
_PID_FILE_S = 30.0  # a started postmaster writes its pid file within this


def find_bin_dir(config: PostgresPhysicalConfig, major: int | None) -> Path:
    """Where the server binaries for PostgreSQL ``major`` are: ``bin_dir``, the Debian layout, pg_config, PATH."""
    if config.bin_dir is not None:
        return config.bin_dir
    if major is not None and (Path(f"/usr/lib/postgresql/{major}/bin") / "pg_ctl").exists():
        return Path(f"/usr/lib/postgresql/{major}/bin")
    code, out, _err = proc.run_capture(["pg_config", "--bindir"], env=None, redact=proc.Redactor())
    if code == 0 and (Path(out.strip()) / "pg_ctl").exists():
        return Path(out.strip())
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise EngineError(
        f"no PostgreSQL {major or ''} server binaries (pg_ctl, postgres) found. Fix: install postgresql-{major or 15}"
        " or set bin_dir in the destination's config",
        stage="config",
    )


class Server:
    """A restored cluster: started and stopped with pg_ctl as its OS user, queried over its private socket."""

    def __init__(self, config: PostgresPhysicalConfig, directory: Path, bin_dir: Path, owner: ServerUser) -> None:
        self.config = config
        self.directory = directory
        self.bin_dir = bin_dir
        self.owner = owner
        self.started = False
        self._started_at = 0.0
        self._pid_seen = False

    def pg_ctl(self, *args: str, timeout: float = 120) -> tuple[int, str]:
        argv = self.owner.argv([str(self.bin_dir / "pg_ctl"), "-D", str(self.directory), *args])
        code, out, err = proc.run_capture(argv, env=proc.child_env(), redact=proc.Redactor(), timeout=timeout)
        return code, (out + err).strip()

    def start(self) -> None:
        code, output = self.pg_ctl("-l", str(self.directory / LOG_FILE), "-W", "start")
        if code != 0:
            raise EngineError(f"pg_ctl could not start the restored server: {output[-500:]}", stage="restore")
        self.started = True
        self._started_at = time.monotonic()

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server if it runs; True when it was running."""
        if not (self.directory / "postmaster.pid").exists():
            return False
        code, _output = self.pg_ctl("-m", mode, "-w", "stop")
        return code == 0

    def recorded_settings(self) -> dict[str, str]:
        """The source's settings a hot standby must at least have, as its pg_control recorded them."""
        argv = self.owner.argv([str(self.bin_dir / "pg_controldata"), "-D", str(self.directory)])
        code, out, err = proc.run_capture(argv, env=proc.child_env({"LC_ALL": "C"}), redact=proc.Redactor())
        if code != 0:
            raise EngineError(f"pg_controldata cannot read the restored pg_control: {err[-500:]}", stage="restore")
        found = {label: value.strip() for label, _colon, value in (line.partition(":") for line in out.splitlines())}
        return {name: found[label] for label, name in _RECORDED.items() if found.get(label, "").isdigit()}

    def alive(self) -> bool:
        """The postmaster runs (or, just started, has not written its pid file yet)."""
        try:
            pid = int((self.directory / "postmaster.pid").read_text(encoding="ascii").split("\n", 1)[0])
        except FileNotFoundError:
            if self._pid_seen or "database system is shut down" in self.log_text():
                return False
            return time.monotonic() - self._started_at < _PID_FILE_S
        except (OSError, ValueError):
            return True  # being written
        self._pid_seen = True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True  # it exists (another user's process)
        return True

    def sql(self, statement: str, *, timeout: float = 60) -> tuple[int, str, str]:
        """(exit code, output, error) of ``statement`` over the private socket (trust while restoring)."""
        argv = [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1", "-F", "\t"]
        argv += ["-h", str(self.directory), "-p", str(self.config.port), "-U", self.config.user]
        argv += ["-d", self.config.database, "-c", statement]
        env = proc.child_env({"PGCONNECT_TIMEOUT": "5"}, drop=("PGPASSWORD", "PGPASSFILE", "PGSERVICE"))
        code, out, err = proc.run_capture(argv, env=env, redact=proc.Redactor(), timeout=timeout)
        return code, out.strip(), err.strip()

    def query(self, statement: str) -> str:
        code, out, err = self.sql(statement)
        if code != 0:
            raise EngineError(f"the restored server refused {statement!r}: {err[-500:]}", stage="verify")
        return out

    def log_text(self) -> str:
        try:
            return (self.directory / LOG_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def died(self, what: str) -> EngineError:
        text = self.log_text()
        fatal = _FATAL.findall(text)
        line = fatal[-1][1].strip() if fatal else (text.strip().splitlines() or ["(its log is empty)"])[-1]
        hint = next((fix for known, fix in _HINTS.items() if known in line), "")
        return EngineError(
            f"the restored server stopped during {what}: {line}{hint}", stage="restore", stderr_tail=text[-4000:]
        )

    def wait(self, done: Callable[[], str | None], *, what: str, timeout: float) -> str:
        """Poll ``done`` until it returns a state; EngineError when the server dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            state = done()
            if _STUCK in self.log_text():
                raise EngineError(
                    f"the restored server cannot recover: {_STUCK} (the source raised max_connections,"
                    " max_worker_processes, max_wal_senders, max_prepared_transactions or max_locks_per_transaction"
                    " after the base backup). Fix: restore from a later base backup, or set them in the"
                    " destination's postgresql.conf as the source has them now",
                    stage="restore",
                    stderr_tail=self.log_text()[-4000:],
                )
            if state is not None:
                return state
            if not self.alive():
                time.sleep(_POLL_S)  # the postmaster may have written its last lines just now
                raise self.died(what)
            if time.monotonic() > deadline:
                raise EngineError(
                    f"the restored server did not finish {what} within {timeout:g}s. Fix: raise recovery_timeout_s"
                    f" (the server's log: {self.directory / LOG_FILE})",
                    stage="restore",
                )
            time.sleep(_POLL_S)


def stop_server(config: PostgresPhysicalConfig, directory: Path, *, mode: str) -> list[str]:
    """Stop a restored server in ``directory`` if one runs there; what was done."""
    if not (directory / "postmaster.pid").exists():
        return []
    owner = pg_extract.server_user(config.server_user)
    server = Server(config, directory, find_bin_dir(config, _major_of(directory)), owner)
    with contextlib.suppress(subprocess.TimeoutExpired):
        if server.stop(mode):
            return [f"stopped the restored server ({mode})"]
    return []


def _major_of(directory: Path) -> int | None:
    try:
        return major_version((directory / "PG_VERSION").read_text(encoding="ascii"))
    except OSError:
        return None
