"""The one place that runs subprocesses: spawning, process groups, feeding and capturing, stderr tails.

Every child of the agent is started here (``spawn``, ``run_feed``, ``run_capture``) and stopped here
(``kill_group``). The engines' dumps run through ``backup_agent.engines.running``, built on these.

Rules enforced here:
- argv is always a list (never a shell string) and never carries a secret; secrets reach children
  through their environment or a 0600 file in a private 0700 temp directory (``SecretFiles``).
- no child inherits a secret it was not given: every child's environment is built by ``child_env``,
  which leaves out every variable a secret reference of this host names (``hide_variables``), every
  variable whose value is a resolved secret, and every credential-named variable (``PGPASSWORD``,
  ``AWS_SECRET_ACCESS_KEY``, ``*_TOKEN`` ...); only the target's own ``extra`` variables are added
  back. A child started with ``env=None`` (version probes) gets exactly that: no secret at all.
- private dirs left by an earlier agent that was SIGKILLed are removed at start
  (``remove_stale_secret_dirs``): only ``backup-agent-secrets-<pid>-*`` dirs of this user whose
  process is gone.
- every child runs in its own session/process group so ``kill_group`` can stop it and its children.
- stderr is drained continuously by a thread (a chatty child can never block on a full pipe); only
  the last bytes are kept, and they are redacted before anyone sees them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, BinaryIO

from backup_agent.engines.base import EngineError
from backup_contracts.redaction import is_credential_name, known_secrets, redact

log = logging.getLogger(__name__)

TAIL_BYTES = 4096
_KEEP_BYTES = 64 * 1024  # raw stderr kept before redaction; redaction happens before the final cut
CHUNK = 1024 * 1024
SECRET_DIR_PREFIX = "backup-agent-secrets-"  # noqa: S105 - a directory name, not a secret
SECRET_FILE_NAMES = frozenset({"pgpass", "my.cnf"})
_hidden_lock = threading.Lock()
_hidden_variables: set[str] = set()


def hide_variables(names: Iterable[str]) -> None:
    """Never pass these environment variables to a child (the ``{env: VAR}`` references of every target)."""
    with _hidden_lock:
        _hidden_variables.update(name for name in names if name)


def forget_hidden_variables() -> None:
    """Tests only: start from no hidden variables."""
    with _hidden_lock:
        _hidden_variables.clear()


def hidden_variables() -> frozenset[str]:
    with _hidden_lock:
        return frozenset(_hidden_variables)


class Redactor:
    """The secrets one child was given; masks them, the process's registered secrets and credential
    shapes through ``backup_contracts.redaction`` (the one place that knows how to mask)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [s for s in secrets if s]

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def __call__(self, text: str) -> str:
        return redact(text, extra=self._secrets)


def tail_text(raw: bytes, redact: Callable[[str], str], limit: int = TAIL_BYTES) -> str:
    """Decode, redact, then keep the last ``limit`` bytes (on a character boundary)."""
    text = redact(raw.decode("utf-8", errors="replace"))
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[-limit:].decode("utf-8", errors="ignore")


def command_line(argv: Sequence[str]) -> str:
    """A quoted, loggable command line (argv never carries secrets; redact anyway)."""
    return Redactor()(shlex.join(argv))


class StderrCollector:
    """Drains a binary stream in a thread, keeping only the last ``_KEEP_BYTES`` bytes."""

    def __init__(self, stream: IO[bytes] | None) -> None:
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if stream is not None:
            self._thread = threading.Thread(target=self._drain, args=(stream,), name="stderr-drain", daemon=True)
            self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
                if not chunk:
                    break
                self.write(chunk)
        with contextlib.suppress(OSError):
            stream.close()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._buf += data
            if len(self._buf) > _KEEP_BYTES:
                del self._buf[: len(self._buf) - _KEEP_BYTES]

    def join(self, timeout: float | None = None) -> bytes:
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            return bytes(self._buf)


class SecretFiles:
    """A private 0700 temp dir holding 0600 files with secrets; removed by ``cleanup`` (idempotent)."""

    def __init__(self) -> None:
        self._dir: str | None = None

    def write(self, name: str, content: str) -> str:
        if self._dir is None:
            # 0700; the pid in the name lets a later agent remove it if this process is SIGKILLed
            self._dir = tempfile.mkdtemp(prefix=f"{SECRET_DIR_PREFIX}{os.getpid()}-")
        path = os.path.join(self._dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        return path

    def cleanup(self) -> None:
        directory, self._dir = self._dir, None
        if directory is None:
            return
        for entry in os.listdir(directory):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, entry))
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds that pid now: not ours to judge
    return True


def remove_stale_secret_dirs(root: str | None = None) -> list[str]:
    """Remove the private secret dirs of agent processes that are gone (SIGKILLed mid-run); returns them.

    Only what this module creates qualifies: a real directory (not a symlink) named
    ``backup-agent-secrets-<pid>-*`` in the temp dir, owned by this user, mode 0700, holding nothing but
    ``pgpass``/``my.cnf`` files, whose pid is not a running process."""
    base = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        pid_text = entry.name.removeprefix(SECRET_DIR_PREFIX).split("-", 1)[0]
        if not entry.name.startswith(SECRET_DIR_PREFIX) or not pid_text.isdigit():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if (
                not entry.is_dir(follow_symlinks=False)
                or info.st_uid != os.getuid()
                or info.st_mode & 0o777 != 0o700
                or int(pid_text) == os.getpid()
                or _pid_alive(int(pid_text))
            ):
                continue
            names = os.listdir(entry.path)
            if not set(names) <= SECRET_FILE_NAMES:
                continue
            for name in names:
                os.unlink(os.path.join(entry.path, name))
            os.rmdir(entry.path)
        except OSError:
            continue
        removed.append(entry.path)
    return removed


def child_env(
    extra: Mapping[str, str] | None = None, drop: Iterable[str] = (), secrets: Iterable[str] = ()
) -> dict[str, str]:
    """The agent's environment for a child without any secret, plus ``extra`` (the child's own).

    Left out: ``drop``; every variable named by a secret reference of this host (``hide_variables``);
    every credential-named variable; every variable holding one of ``secrets`` or a secret this process
    resolved (e.g. the ``{env: DB_PASSWORD}`` another target's password came from)."""
    hidden_values = {s for s in secrets if s} | set(known_secrets())
    hidden_names = hidden_variables() | set(drop)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in hidden_names and value not in hidden_values and not is_credential_name(key)
    }
    env.update(extra or {})
    return env


def kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the child's process group, then SIGKILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait()
    else:
        # the leader is gone; whatever it started in its group (and ignored SIGTERM) goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.PIPE,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    log.debug("starting %s", command_line(argv))
    return subprocess.Popen(  # argv list, no shell
        list(argv),
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else child_env(),
        cwd=cwd,
        start_new_session=True,
        close_fds=True,
    )


def pump(
    source: BinaryIO,
    sinks: Sequence[subprocess.Popen[bytes]],
    *,
    observe: Callable[[bytes], None] | None = None,
    drain: bool = False,
) -> None:
    """Copy ``source`` into every sink's stdin; a sink that exits early (EPIPE) is dropped, not fatal.

    When every sink has gone, copying stops, unless ``drain``: then ``observe`` still sees the rest."""
    live = [p for p in sinks if p.stdin is not None]
    try:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            if observe is not None:
                observe(chunk)
            for proc in list(live):
                try:
                    proc.stdin.write(chunk)  # type: ignore[union-attr]
                except (BrokenPipeError, ValueError):
                    live.remove(proc)
            if not live and not drain:
                break
    finally:
        for proc in sinks:
            if proc.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()


def run_feed(
    argv: Sequence[str],
    source: BinaryIO,
    *,
    env: Mapping[str, str] | None,
    redact: Redactor,
    observe: Callable[[bytes], None] | None = None,
    cwd: str | None = None,
) -> tuple[int, str, bytes]:
    """Run ``argv`` with ``source`` piped into its stdin. Returns (exit code, redacted stderr tail, stdout)."""
    try:
        proc = spawn(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=cwd)
    except OSError as exc:
        raise EngineError(f"cannot start {argv[0]}: {exc.strerror or exc}", stage="restore", exit_code=127) from exc
    out = StderrCollector(proc.stdout)  # stdout of restore tools is small; keep its tail
    err = StderrCollector(proc.stderr)
    try:
        pump(source, [proc], observe=observe)
        code = proc.wait()
    except BaseException:
        kill_group(proc, 5.0)
        raise
    return code, tail_text(err.join(), redact), out.join()


def run_capture(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    redact: Redactor,
    input_bytes: bytes | None = None,
    timeout: float = 60.0,
) -> tuple[int, str, str]:
    """Run a short command to completion. Returns (exit code, stdout, redacted stderr tail)."""
    try:
        result = subprocess.run(  # argv list, no shell
            list(argv),
            input=input_bytes,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
            capture_output=True,
            env=dict(env) if env is not None else child_env(),
            timeout=timeout,
            start_new_session=True,
            check=False,
        )
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired as exc:
        return 124, "", tail_text(exc.stderr or b"", redact) + f"\n{argv[0]}: timed out after {timeout:g}s"
    return result.returncode, result.stdout.decode("utf-8", "replace"), tail_text(result.stderr, redact)


def fsync_dir(path: str | Path) -> None:
    fd = os.open(str(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
