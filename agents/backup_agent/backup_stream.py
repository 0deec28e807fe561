"""One dump streamed into one multipart upload, step by step, and judged: the heart of a backup run.

Steps (``BackupStream.run``): start the dump; start the multipart upload; copy the dump's bytes
through the engine's validator into zstd and the upload's parts (``PartSink``); reap the dump and
judge it (interrupted, rejected, unreaped, non-zero exit, no output: each a ``BackupFailure``);
finish the validator and wait for the part uploads. Whatever stops a step early stops the dump too,
and its process is reaped before the failure propagates. Completing the upload is the caller's:
only a stream that came through every step may become a backup.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import zstandard

from backup_agent.compression import zstd_parameters
from backup_agent.config import Compression
from backup_agent.dumpstream import DumpReader
from backup_agent.engines.base import DumpOutcome, Engine, EngineError, InvalidDumpError, RunningDump, StreamValidator
from backup_agent.uploader import MultipartUpload, PartSink, UploadError

log = logging.getLogger(__name__)

Stage = Literal["dump", "upload", "verify", "config"]
ProgressFn = Callable[[int, int], None]
INTERRUPTED = "interrupted by SIGTERM"
NOT_WELL_FORMED = "the dump stream is not well-formed"


class BackupFailure(Exception):
    """Why a backup run failed: the stage, the error, and the dump tool's exit code and stderr tail."""

    def __init__(self, stage: Stage, error: str, *, exit_code: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(error)
        self.stage = stage
        self.error = error
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


@dataclass(frozen=True)
class Streamed:
    """What a clean dump became: its raw size, the stored (compressed) object, the validator's facts."""

    bytes_in: int
    bytes_stored: int
    sha256: str
    parts: int
    validator: dict[str, object]


@dataclass
class BackupStream:
    """Streams one engine's dump into one multipart upload; ``terminate`` stops a dump in progress."""

    engine: Engine
    compression: Compression
    cancel: threading.Event
    progress: ProgressFn | None = None
    _dump: RunningDump | None = field(default=None, init=False)
    _dump_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def terminate(self) -> None:
        """Stop the dump, if one is running (``cancel`` is the caller's to set)."""
        with self._dump_lock:
            if self._dump is not None:
                self._dump.terminate()

    def run(self, upload: MultipartUpload) -> Streamed:
        """Dump -> validator -> zstd -> parts, judged at the end: the facts of a clean dump, or ``BackupFailure``."""
        self._stop_if_cancelled()
        # The dump starts first: connecting and locking take the database a moment, and its first
        # output waits in the pipe while the multipart upload is created.
        dump = self._start_dump()
        self._start_upload(upload, dump)
        validator = self.engine.validator()
        sink = PartSink(upload)
        bytes_in, invalid = self._copy(dump, validator, sink)
        outcome = self._reap_and_judge(dump, bytes_in, invalid)
        facts = self._finish_validator(validator, outcome)
        self._finish_upload(upload)
        return Streamed(bytes_in, sink.bytes_stored, sink.sha256.hexdigest(), upload.next_part - 1, facts)

    def _stop_if_cancelled(self) -> None:
        if self.cancel.is_set():
            raise BackupFailure("dump", INTERRUPTED)

    def _start_dump(self) -> RunningDump:
        try:
            dump = self.engine.start_dump()
        except EngineError as exc:
            raise BackupFailure("dump", str(exc), exit_code=exc.exit_code, stderr_tail=exc.stderr_tail) from exc
        except OSError as exc:
            raise BackupFailure("dump", f"cannot start the dump: {exc}") from exc
        with self._dump_lock:
            self._dump = dump
        if self.cancel.is_set():
            dump.terminate()
        return dump

    def _start_upload(self, upload: MultipartUpload, dump: RunningDump) -> None:
        try:
            upload.start()
        except UploadError as exc:
            self._stop(dump)
            raise BackupFailure("upload", str(exc)) from exc

    def _copy(self, dump: RunningDump, validator: StreamValidator, sink: PartSink) -> tuple[int, str | None]:
        """Run the copy loop; whatever stops it early stops (and reaps) the dump too before it propagates."""
        cctx = zstandard.ZstdCompressor(compression_params=zstd_parameters(self.compression))
        writer = cctx.stream_writer(sink, closefd=False, write_return_read=True)  # type: ignore[arg-type]
        reader = DumpReader(dump.stream)
        try:
            return self._validate_and_compress(reader, dump, validator, writer, sink)
        except UploadError as exc:
            self._stop(dump)
            raise BackupFailure("upload", str(exc)) from exc
        except BaseException:
            self._stop(dump)
            raise

    def _validate_and_compress(
        self,
        reader: DumpReader,
        dump: RunningDump,
        validator: StreamValidator,
        writer: zstandard.ZstdCompressionWriter,
        sink: PartSink,
    ) -> tuple[int, str | None]:
        """Read -> validate -> compress until the dump ends or the validator rejects it (the dump is then
        stopped); returns the bytes read and the rejection, if any."""
        bytes_in = 0
        invalid: str | None = None
        while chunk := self._read(reader):  # a view of the reader's buffer, consumed before the next read
            self._stop_if_cancelled()
            bytes_in += len(chunk)
            invalid = _rejection(validator, chunk)
            if invalid is not None:
                dump.terminate()
                break
            writer.write(chunk)
            self._report_progress(bytes_in, sink)
        self._stop_if_cancelled()
        if invalid is None:
            writer.flush(zstandard.FLUSH_FRAME)
            sink.flush_last()
            self._report_progress(bytes_in, sink)
        return bytes_in, invalid

    def _read(self, reader: DumpReader) -> memoryview:
        try:
            return reader.read()
        except (OSError, ValueError):
            if self.cancel.is_set():  # terminate() closed the stream under the read
                raise BackupFailure("dump", INTERRUPTED) from None
            raise

    def _report_progress(self, bytes_in: int, sink: PartSink) -> None:
        if self.progress is not None:
            self.progress(bytes_in, sink.bytes_stored)

    def _reap_and_judge(self, dump: RunningDump, bytes_in: int, invalid: str | None) -> DumpOutcome:
        """Only a dump that was not interrupted, exited 0, wrote bytes and was not rejected goes on."""
        outcome = self._reap(dump)
        exit_code = outcome.exit_code if outcome else None
        if self.cancel.is_set():
            raise BackupFailure("dump", INTERRUPTED, exit_code=exit_code)
        if invalid is not None:
            raise BackupFailure(
                "verify", invalid, exit_code=exit_code, stderr_tail=outcome.stderr_tail if outcome else ""
            )
        if outcome is None:
            raise BackupFailure("dump", "the dump process could not be reaped")
        if outcome.exit_code != 0:
            raise BackupFailure(
                "dump",
                f"the dump tool exited with status {outcome.exit_code}",
                exit_code=outcome.exit_code,
                stderr_tail=outcome.stderr_tail,
            )
        if bytes_in == 0:
            raise BackupFailure("dump", "the dump produced no output", exit_code=0, stderr_tail=outcome.stderr_tail)
        return outcome

    @staticmethod
    def _finish_validator(validator: StreamValidator, outcome: DumpOutcome) -> dict[str, object]:
        try:
            return validator.finish()
        except InvalidDumpError as exc:
            raise BackupFailure(
                "verify", str(exc) or NOT_WELL_FORMED, exit_code=0, stderr_tail=outcome.stderr_tail
            ) from exc

    @staticmethod
    def _finish_upload(upload: MultipartUpload) -> None:
        try:
            upload.wait()
        except UploadError as exc:
            raise BackupFailure("upload", str(exc)) from exc

    def _stop(self, dump: RunningDump) -> None:
        dump.terminate()
        self._reap(dump)

    @staticmethod
    def _reap(dump: RunningDump) -> DumpOutcome | None:
        try:
            return dump.wait()
        except EngineError as exc:
            log.warning("dump wait failed: %s", exc)
            return None


def _rejection(validator: StreamValidator, chunk: memoryview) -> str | None:
    """What the validator found wrong with this chunk (None: nothing, so far)."""
    try:
        validator.feed(chunk)
    except InvalidDumpError as exc:
        return str(exc) or NOT_WELL_FORMED
    return None
