"""The engine interface the agent's streaming pipeline and restore executor are written against.

An engine turns a target's local connection config into a running dump (a byte stream plus an exit
status), validates that stream incrementally (bounded memory) so a truncated or empty dump can never
be completed as a backup, restores such a stream into a destination, and removes what a drill
restored into its scratch destination again (``drop_restored``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Literal, Protocol, runtime_checkable


class InvalidDumpError(Exception):
    """The dump stream is not well-formed for its format (empty, truncated, wrong magic...)."""


class EngineError(Exception):
    """An engine operation failed; ``stage`` says where, ``stderr_tail`` is already redacted."""

    def __init__(self, message: str, *, stage: str, exit_code: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.stage = stage
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


@dataclass(frozen=True)
class Versions:
    tool_version: str | None
    server_version: str | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DumpOutcome:
    exit_code: int
    stderr_tail: str  # redacted, at most a few KiB


class RunningDump(Protocol):
    """A dump in progress. ``stream`` yields the raw dump bytes; ``wait`` reaps it after EOF."""

    stream: BinaryIO

    def wait(self) -> DumpOutcome: ...

    def terminate(self) -> None:
        """Stop the dump (SIGTERM to its process group, then SIGKILL); safe to call twice."""
        ...


Chunk = bytes | bytearray | memoryview
"""A piece of a dump stream. The pipeline passes views of a reused buffer: copy what you keep."""


class StreamValidator(Protocol):
    """Sees every raw dump byte in order; ``finish`` raises InvalidDumpError if the whole was bad."""

    def feed(self, chunk: Chunk) -> None: ...

    def finish(self) -> dict[str, object]:
        """Return facts for the manifest (e.g. table count); raise InvalidDumpError when invalid."""
        ...


@dataclass(frozen=True)
class RestoreReport:
    destination: str
    verification: dict[str, object] = field(default_factory=dict)


RestoreMode = Literal["clone", "in-place", "drill"]


class Engine(Protocol):
    name: str  # "postgresql", "postgresql-physical", "mariadb", "sqlite", "files", "command"
    format: str  # e.g. "pg_dump-custom", "mariadb-sql", "sqlite-db", "tar", "command"
    extension: str  # object key extension before ".zst", e.g. "pgdump", "sql", "sqlite", "tar", "bin"

    def versions(self) -> Versions: ...

    def check(self) -> list[str]:
        """Problems found connecting to the target and finding its tools; empty when healthy."""
        ...

    def start_dump(self) -> RunningDump: ...

    def validator(self) -> StreamValidator: ...

    def restore(self, stream: BinaryIO, *, mode: RestoreMode) -> RestoreReport:
        """Restore the raw (decompressed) dump stream into this engine's target."""
        ...

    def drop_restored(self) -> str:
        """Remove what a restore put into this target (a drill's scratch copy); returns what was done.

        Destroys the target's data: only for scratch destinations, after their own restore succeeded.
        Raises when the cleanup failed; an engine that cannot clean up says so in what it returns.
        """
        ...


@dataclass(frozen=True)
class Recovery:
    """How a physical restore replays archived WAL: the server's ``restore_command`` (it fetches ``%f``
    into ``%p``) and where recovery stops: ``time`` — before the first commit after ``target_time``;
    ``end`` — at the end of the WAL restore_command yields; ``immediate`` — as soon as the base backup is
    consistent (PostgreSQL's ``recovery_target = 'immediate'``). A ``target_time`` alone means ``time``."""

    restore_command: str
    target_time: datetime | None = None
    target: Literal["time", "end", "immediate"] | None = None

    @property
    def stop(self) -> Literal["time", "end", "immediate"]:
        if self.target is not None:
            return self.target
        return "time" if self.target_time is not None else "end"


@runtime_checkable
class RecoveringEngine(Engine, Protocol):
    """An engine whose backups are physical (a base backup plus WAL): a restore must replay WAL."""

    def restore_with_wal(self, stream: BinaryIO, *, mode: RestoreMode, recovery: Recovery) -> RestoreReport:
        """Restore the raw base backup stream into a new data directory, replay WAL up to
        ``recovery.target_time``, start the server and verify it; the report says the time reached."""
        ...
