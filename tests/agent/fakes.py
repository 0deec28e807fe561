"""Test-double engines for the pipeline: real subprocesses whose output and exit status we choose.

They implement the ``backup_agent.engines.base.Engine`` protocol, so the pipeline cannot tell them
from the real engines; the real engines have their own tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from typing import BinaryIO

from backup_agent.engines.base import DumpOutcome, InvalidDumpError, RestoreReport, Versions


def writer_argv(
    total: int,
    *,
    exit_code: int = 0,
    chunk: int = 1 << 20,
    delay: float = 0.0,
    compressible: bool = True,
    stderr: str = "",
    magic: bytes = b"FAKEDUMP",
) -> list[str]:
    """argv of a Python child that writes ``total`` bytes (``magic`` first) then exits ``exit_code``."""
    script = (
        "import os,sys,time\n"
        f"total={total}; chunk={chunk}; delay={delay}; magic={magic!r}\n"
        "out=sys.stdout.buffer\n"
        "rnd=os.urandom(1<<16)\n"
        f"block=(rnd*((chunk>>16)+1))[:chunk] if {compressible} else None\n"
        "written=0\n"
        "if total:\n"
        "    out.write(magic[:total]); written=len(magic[:total])\n"
        "while written<total:\n"
        "    n=min(chunk,total-written)\n"
        "    data=block[:n] if block is not None else os.urandom(n)\n"
        "    out.write(data); written+=n\n"
        "    if delay: out.flush(); time.sleep(delay)\n"
        "out.flush()\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({exit_code})\n"
    )
    return [sys.executable, "-c", script]


class SubprocessDump:
    def __init__(self, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
        assert self.proc.stdout is not None
        self.stream: BinaryIO = self.proc.stdout  # type: ignore[assignment]
        self._stderr = b""
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr = self.proc.stderr.read()

    def wait(self) -> DumpOutcome:
        code = self.proc.wait()
        self._reader.join()
        self.stream.close()
        return DumpOutcome(exit_code=code, stderr_tail=self._stderr.decode(errors="replace")[-4096:])

    def terminate(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)


class AcceptAll:
    def __init__(self) -> None:
        self.seen = 0

    def feed(self, chunk: bytes) -> None:
        self.seen += len(chunk)

    def finish(self) -> dict[str, object]:
        if not self.seen:
            raise InvalidDumpError("empty")
        return {"bytes_seen": self.seen}


class MagicValidator(AcceptAll):
    """Rejects a stream that does not start with ``magic`` (decided at finish)."""

    def __init__(self, magic: bytes) -> None:
        super().__init__()
        self.magic = magic
        self.head = b""

    def feed(self, chunk: bytes) -> None:
        super().feed(chunk)
        if len(self.head) < len(self.magic):
            self.head += bytes(chunk[: len(self.magic) - len(self.head)])

    def finish(self) -> dict[str, object]:
        facts = super().finish()
        if self.head != self.magic:
            raise InvalidDumpError(f"bad magic {self.head!r}, expected {self.magic!r}")
        return facts


class FakeEngine:
    name = "fake"
    format = "fake-bytes"
    extension = "bin"

    def __init__(
        self,
        argv: list[str],
        *,
        validator: Callable[[], AcceptAll] = AcceptAll,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self._validator = validator
        self.env = env
        self.dumps: list[SubprocessDump] = []

    def versions(self) -> Versions:
        return Versions(tool_version="fake 1.0", server_version="fake-server 2.0")

    def check(self) -> list[str]:
        return []

    def start_dump(self) -> SubprocessDump:
        dump = SubprocessDump(self.argv, env=self.env)
        self.dumps.append(dump)
        return dump

    def validator(self) -> AcceptAll:
        return self._validator()

    def restore(self, stream: BinaryIO, *, mode: str) -> RestoreReport:
        raise NotImplementedError

    def drop_restored(self) -> str:
        raise NotImplementedError
