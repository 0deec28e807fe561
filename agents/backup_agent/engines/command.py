"""Command: any dump command that writes the dump to stdout, and its restore command reading stdin.

This is how engines without a built-in driver are supported, MongoDB first among them::

    mongo-main:
      engine: command
      dump_command: [mongodump, --archive, --username=backup, "--config={file:mongo}"]
      restore_command: [mongorestore, --archive, --drop, --username=backup, "--config={file:mongo}"]
      format: mongodump-archive
      extension: archive
      magic_hex: 6de29981          # mongodump archive magic (0x8199e26d, little-endian)
      secret_files:
        mongo: {content: "password: {secret_json}", secret: {secretsmanager: prod/mongo, json_key: password}}

Secrets never go into argv (the process list shows it): a tool gets them through ``env`` (resolved
references land only in that child's environment) or a secret file: each child whose argv names
``{file:NAME}`` gets its own 0600 copy in a private 0700 directory (``proc.SecretFiles``), removed
when it is reaped. mongodump/mongorestore read a password from a YAML ``--config`` file;
``{secret_json}`` writes the value as a JSON string, which YAML reads too, whatever its characters.
Resolved values are masked in stderr tails and kept out of every other child's environment.

The format check: non-empty output, the optional ``magic_hex`` prefix, and the optional
``verify_command`` (``VerifyCommand``), started with the dump and fed the same raw bytes while they
stream: the backup counts only if it exits 0 after the end of the stream (docs/agent.md lists what
to use per tool). A non-zero exit of the dump or the restore command fails them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import select
import shutil
import struct
import termios
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from backup_agent import proc
from backup_agent.dumpstream import enlarge_pipe
from backup_agent.engines.base import (
    Chunk,
    DumpOutcome,
    EngineError,
    InvalidDumpError,
    RestoreMode,
    RestoreReport,
    StreamValidator,
    Versions,
)
from backup_agent.engines.config import CommandConfig, Resolve, SecretRef
from backup_agent.engines.running import ProcessDump
from backup_agent.engines.validators import Deferred, NonEmptyValidator

if TYPE_CHECKING:
    import subprocess

_QUEUED_CHUNKS = 4  # chunk copies waiting for the verifier (a chunk is at most the 1 MiB read buffer)
_POLL_S = 0.05
_READ_ALL_FIX = (
    "Fix: use a verify_command that reads its stdin to the end (docs/agent.md, Command targets);"
    " `mongorestore --dryRun` is no such check: it reads only the archive's prelude"
)


@dataclass
class _Child:
    """One child's argv (``{file:NAME}`` replaced by paths), environment, redactor and secret files."""

    argv: list[str]
    env: dict[str, str]
    redact: proc.Redactor
    files: proc.SecretFiles


def _render(content: str, secret: str) -> str:
    return CommandConfig.SecretFile.placeholder().sub(
        lambda m: json.dumps(secret, ensure_ascii=False) if m.group(1) else secret, content
    )


class CommandEngine:
    name = "command"

    def __init__(self, target: str, config: CommandConfig, resolve: Resolve, *, grace: float = 5.0) -> None:
        self.target = target
        self.config = config
        self.format = config.format
        self.extension = config.extension
        self._resolve = resolve
        self._grace = grace
        self._pending = threading.local()  # the verifier start_dump started, for this thread's validator()

    def _child(self, argv: list[str]) -> _Child:
        extra: dict[str, str] = {}
        secrets: list[str] = []
        for key, value in self.config.env.items():
            extra[key] = self._resolve(value) if isinstance(value, SecretRef) else value
            secrets += [extra[key]] if isinstance(value, SecretRef) else []
        pattern = CommandConfig.file_reference()
        files = proc.SecretFiles()
        paths: dict[str, str] = {}
        try:
            for name in dict.fromkeys(name for arg in argv for name in pattern.findall(arg)):
                spec = self.config.secret_files[name]
                secrets.append(self._resolve(spec.secret))
                paths[name] = files.write(name, _render(spec.content, secrets[-1]))
        except BaseException:
            files.cleanup()
            raise
        argv = [pattern.sub(lambda m: paths[m.group(1)], arg) for arg in argv]
        return _Child(argv, proc.child_env(extra, secrets=secrets), proc.Redactor(secrets), files)

    def _magic(self) -> bytes | None:
        return bytes.fromhex(self.config.magic_hex) if self.config.magic_hex else None

    def versions(self) -> Versions:
        return Versions(
            tool_version=shutil.which(self.config.dump_command[0]) and self.config.dump_command[0], server_version=None
        )

    def check(self) -> list[str]:
        return [
            f"{role.removesuffix('_command')} command {argv[0]!r} not found. Fix: install it or give its full path"
            for role, argv in self.config.argv_commands().items()
            if shutil.which(argv[0]) is None
        ]

    def _verifier(self) -> VerifyCommand | None:
        if self.config.verify_command is None:
            return None
        child = self._child(self.config.verify_command)
        return VerifyCommand(
            child, NonEmptyValidator(self._magic()), stall_s=self.config.verify_stall_timeout_s, grace=self._grace
        )

    def start_dump(self) -> ProcessDump:
        child = self._child(self.config.dump_command)
        verifier = None
        try:
            verifier = self._verifier()
            dump = _VerifiedDump(child, verifier, grace=self._grace)
        except BaseException:
            child.files.cleanup()
            if verifier is not None:
                verifier.abort()
            raise
        self._pending.verifier = verifier
        return dump

    def validator(self) -> StreamValidator:
        verifier: VerifyCommand | None = getattr(self._pending, "verifier", None)
        self._pending.verifier = None
        return verifier or self._verifier() or NonEmptyValidator(self._magic())

    def drop_restored(self) -> str:
        """The command engine cannot know how to clear a destination; say so instead of guessing."""
        return f"no cleanup for command target {self.target!r}: clear the scratch destination with its own tools"

    def restore(self, stream: BinaryIO, *, mode: RestoreMode) -> RestoreReport:
        child = self._child(self.config.restore_command)
        tap = Deferred(NonEmptyValidator(self._magic()))
        try:
            code, err, out = proc.run_feed(child.argv, stream, env=child.env, redact=child.redact, observe=tap.feed)
        finally:
            child.files.cleanup()
        if code != 0:
            raise EngineError(f"restore command exited {code}", stage="restore", exit_code=code, stderr_tail=err)
        try:
            facts = tap.finish()
        except InvalidDumpError as exc:
            raise EngineError(f"restore refused: {exc}", stage="restore") from exc
        facts["restore_exit_code"] = code
        facts["stdout_tail"] = proc.tail_text(out, child.redact, 1024)
        return RestoreReport(destination=f"command:{self.config.restore_command[0]}", verification=facts)


class _VerifiedDump(ProcessDump):
    """A command target's dump: when it fails or is stopped, its verifier is stopped too (no verdict follows)."""

    def __init__(self, child: _Child, verifier: VerifyCommand | None, *, grace: float) -> None:
        self.verifier = verifier
        super().__init__(child.argv, env=child.env, redact=child.redact, grace=grace, cleanup=child.files.cleanup)

    def wait(self) -> DumpOutcome:
        outcome = super().wait()
        if self.verifier is not None and (outcome.exit_code != 0 or not self.verifier.fed):
            self.verifier.abort()
        return outcome

    def terminate(self) -> None:
        super().terminate()
        if self.verifier is not None:
            self.verifier.abort()


class VerifyCommand:
    """A ``StreamValidator`` that is a process: ``verify_command`` reads the raw dump on its stdin.

    ``feed`` checks the chunk (non-empty, magic) and queues a copy (at most ``_QUEUED_CHUNKS``) for a
    writer thread; with the 1 MiB pipe memory stays ~6 MiB, and the dump waits only while the verifier
    is slower. The agent holds a copy of the pipe's read end: no write fails with EPIPE, and what is
    left in the pipe after the verifier exited is what it never read. Failures (``InvalidDumpError``):
    it exits before the end of the stream (the next ``feed`` raises, so the dump stops early), reads
    nothing for ``stall_s`` while data waits, is still running ``stall_s`` after the end, exits
    non-zero (with its redacted stderr tail), or exits 0 with bytes unread."""

    def __init__(self, child: _Child, inner: NonEmptyValidator, *, stall_s: float, grace: float) -> None:
        self._inner = inner
        self._command = child.argv[0]
        self._what = f"verify_command {child.argv[0]!r}"
        self._child = child
        self._stall_s = stall_s
        self._grace = grace
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._failure: str | None = None
        self._closed = False
        self.fed = self._sent = 0
        self._progress = time.monotonic()
        self._stderr = proc.StderrCollector(None)
        self._writer: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._witness, self._write_fd = os.pipe()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            self._proc = proc.spawn(child.argv, env=child.env, stdin=self._witness, stdout=devnull)
        except OSError as exc:
            self._failure = f"cannot start {self._what}: {exc.strerror or exc}. Fix: install it or give its full path"
            self._close()
            return
        finally:
            os.close(devnull)
        enlarge_pipe(self._write_fd)
        os.set_blocking(self._write_fd, False)
        self._stderr = proc.StderrCollector(self._proc.stderr)
        self._writer = threading.Thread(target=self._write_all, name="verify-command-feed", daemon=True)
        self._writer.start()

    def feed(self, chunk: Chunk) -> None:
        self._raise_if_failed()
        try:
            self._inner.feed(chunk)
        except InvalidDumpError:
            self.abort()
            raise
        data = bytes(chunk)  # the pipeline reuses its buffer
        self.fed += len(data)
        self._hand_over(data)

    def finish(self) -> dict[str, object]:
        try:
            facts = self._inner.finish()  # an empty stream or a wrong magic says so first
        except InvalidDumpError:
            self.abort()
            raise
        self._raise_if_failed()
        self._hand_over(None)
        while self._writer is not None and self._writer.is_alive():
            self._writer.join(_POLL_S)
            self._raise_if_stalled()
        self._raise_if_failed()
        assert self._proc is not None  # noqa: S101 - a verifier that never started has failed above
        if self._proc.poll() is not None:
            self._fail(self._early_exit())
        self._close_fd("_write_fd")  # the end of the stream
        deadline = time.monotonic() + self._stall_s
        while (code := self._proc.poll()) is None:
            if time.monotonic() > deadline:
                self._fail(f"{self._what} did not exit within {self._stall_s:g} s after the end of the dump")
            time.sleep(_POLL_S / 5)
        unread = self._unread()
        if code != 0:
            self._fail(self._rejected(code, "after the end of the dump"))
        if unread:
            self._fail(
                f"{self._what} exited with status 0 without reading the last {unread} bytes of the dump:"
                f" it did not check the whole stream. {_READ_ALL_FIX}"
            )
        self._close()
        facts["verified_by"] = self._command
        return facts

    def abort(self) -> None:
        """Stop the verifier (the run failed or stopped elsewhere); safe to call twice, from any thread."""
        with self._lock:
            if self._failure is None:
                self._failure = f"{self._what} was stopped before the end of the dump"
            self._stop.set()
            if self._proc is not None:
                proc.kill_group(self._proc, self._grace)
            self._close()

    def _hand_over(self, item: bytes | None) -> None:
        while True:
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                self._raise_if_stalled()

    def _write_all(self) -> None:
        """The writer thread: queue -> pipe, until the end of the stream, a stop, or the verifier's exit."""
        assert self._proc is not None  # noqa: S101 - started only after spawn
        try:
            while not self._stop.is_set() and (data := self._next()) is not None:
                view = memoryview(data)
                while view and not self._stop.is_set() and self._proc.poll() is None:
                    try:
                        written = os.write(self._write_fd, view)
                    except BlockingIOError:
                        select.select([], [self._write_fd], [], _POLL_S)
                        continue
                    view, self._sent, self._progress = view[written:], self._sent + written, time.monotonic()
                if self._proc.poll() is not None:
                    self._failure = self._failure or self._early_exit()
                    return
        except Exception as exc:  # noqa: BLE001 - whatever stops the writer must fail the backup, not hang it
            self._failure = self._failure or f"writing to {self._what} failed: {exc}"

    def _next(self) -> bytes | None:
        """The next chunk for the pipe (None: the end of the stream), waiting while the stop is not set."""
        while not self._stop.is_set():
            with contextlib.suppress(queue.Empty):
                item = self._queue.get(timeout=_POLL_S)
                self._progress = time.monotonic()
                return item
        return None

    def _early_exit(self) -> str:
        assert self._proc is not None  # noqa: S101
        code = self._proc.returncode
        read = self._sent - self._unread()
        if code != 0:
            return self._rejected(code, f"after reading {read} bytes, before the end of the dump")
        return (
            f"{self._what} exited with status 0 after reading {read} bytes, before the end of the dump:"
            f" it did not check the whole stream. {_READ_ALL_FIX}"
        )

    def _rejected(self, code: int, when: str) -> str:
        status = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        tail = proc.tail_text(self._stderr.join(2.0), self._child.redact).strip()[-500:]
        return f"{self._what} rejected the dump: it {status} {when}: {tail or '(no stderr)'}"

    def _unread(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            return int(struct.unpack("i", fcntl.ioctl(self._witness, termios.FIONREAD, b"\0\0\0\0"))[0])
        return 0

    def _raise_if_stalled(self) -> None:
        self._raise_if_failed()
        if time.monotonic() - self._progress > self._stall_s:
            self._fail(
                f"{self._what} read nothing of the dump for {self._stall_s:g} s: it stopped reading its stdin."
                " Fix: make it read stdin to the end, or raise verify_stall_timeout_s if it is only slow"
            )

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            self._fail(self._failure)

    def _fail(self, message: str) -> None:
        self._failure = message
        self.abort()
        raise InvalidDumpError(message)

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            if self._writer is not None and self._writer is not threading.current_thread():
                self._writer.join(5.0)
            self._close_fd("_write_fd")
            self._close_fd("_witness")
            self._stderr.join(2.0)
            self._child.files.cleanup()

    def _close_fd(self, attribute: str) -> None:
        """Close one of the pipe's ends once (a number closed twice may be another thread's file by then)."""
        with self._lock:
            fd = getattr(self, attribute)
            setattr(self, attribute, -1)
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
