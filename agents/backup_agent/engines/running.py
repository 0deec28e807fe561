"""The two kinds of ``RunningDump``: a child process whose stdout is the dump, or an in-process producer.

``ProcessDump`` is what the PostgreSQL, MariaDB, files and command engines return: the child is
started through ``backup_agent.proc`` in its own process group, its stderr drained into a bounded,
redacted tail, and ``terminate`` stops the whole group. ``ThreadDump`` is the SQLite engine's: the
backup API runs in a thread that writes into a pipe, so the pipeline reads both kinds the same way.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO, cast

from backup_agent.engines.base import DumpOutcome
from backup_agent.proc import CHUNK, Redactor, StderrCollector, kill_group, spawn, tail_text


class ProcessDump:
    """A ``RunningDump`` backed by a child process whose stdout is the dump stream."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        redact: Redactor,
        cleanup: Callable[[], None] | None = None,
        grace: float = 5.0,
        map_exit: Callable[[int, bytes], int] | None = None,
        cwd: str | None = None,
    ) -> None:
        self._redact = redact
        self._cleanup = cleanup
        self._grace = grace
        self._map_exit = map_exit
        self._outcome: DumpOutcome | None = None
        self._lock = threading.Lock()
        try:
            self.proc = spawn(argv, env=env, cwd=cwd)
        except OSError:
            if cleanup:
                cleanup()
            raise
        assert self.proc.stdout is not None  # noqa: S101 - Popen(stdout=PIPE) guarantees it
        self.stream: BinaryIO = cast(BinaryIO, self.proc.stdout)
        self._stderr = StderrCollector(self.proc.stderr)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self) -> DumpOutcome:
        with self._lock:
            if self._outcome is None:
                code = self.proc.wait()
                raw = self._stderr.join()
                if self._map_exit is not None:
                    code = self._map_exit(code, raw)
                self._outcome = DumpOutcome(exit_code=code, stderr_tail=tail_text(raw, self._redact))
                with contextlib.suppress(OSError):
                    self.stream.close()
                if self._cleanup:
                    self._cleanup()
            return self._outcome

    def terminate(self) -> None:
        kill_group(self.proc, self._grace)
        with contextlib.suppress(OSError):
            self.stream.close()
        if self._cleanup:
            self._cleanup()


class _Cancelled(Exception):
    pass


class ThreadDump:
    """A ``RunningDump`` produced in-process: ``producer(write)`` runs in a thread writing into a pipe.

    The producer's exception becomes exit code 1 with its (redacted) message as the stderr tail;
    ``terminate`` makes the next ``write`` raise, so the producer stops and cleans up.
    """

    def __init__(self, producer: Callable[[Callable[[bytes], None]], None], *, redact: Redactor, name: str) -> None:
        self._redact = redact
        self._cancel = threading.Event()
        self._code = 0
        self._stderr = StderrCollector(None)
        read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self.stream: BinaryIO = os.fdopen(read_fd, "rb")
        self._outcome: DumpOutcome | None = None
        self._thread = threading.Thread(target=self._run, args=(producer,), name=name, daemon=True)
        self._thread.start()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._cancel.is_set():
                raise _Cancelled
            try:
                written = os.write(self._write_fd, view[:CHUNK])
            except BlockingIOError:
                select.select([], [self._write_fd], [], 0.2)
                continue
            view = view[written:]

    def _run(self, producer: Callable[[Callable[[bytes], None]], None]) -> None:
        try:
            producer(self._write)
        except _Cancelled:
            self._code = 143
            self._stderr.write(b"terminated\n")
        except BrokenPipeError:
            self._code = 141
            self._stderr.write(b"reader closed the stream\n")
        except Exception as exc:  # noqa: BLE001 - any producer failure must become a failed dump, not a crash
            self._code = 1
            self._stderr.write(f"{type(exc).__name__}: {exc}\n".encode())
        finally:
            with contextlib.suppress(OSError):
                os.close(self._write_fd)

    def wait(self) -> DumpOutcome:
        if self._outcome is None:
            self._thread.join()
            self._outcome = DumpOutcome(exit_code=self._code, stderr_tail=tail_text(self._stderr.join(), self._redact))
        return self._outcome

    def terminate(self) -> None:
        self._cancel.set()
        self._thread.join(timeout=30)
        with contextlib.suppress(OSError):
            self.stream.close()
