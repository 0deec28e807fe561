"""The streaming backup pipeline: dump stdout -> zstd -> SHA-256 -> S3 multipart upload.

Only a clean dump becomes a backup: the upload is completed only when the dump exited 0, produced
bytes, and the engine's validator accepted the whole stream. Anything else aborts the multipart
upload (nothing becomes visible) and reports ``Backup Failed`` with the stage that failed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import zstandard

from backup_agent.admission import new_run_id, object_key_for
from backup_agent.compression import zstd_parameters
from backup_agent.config import AgentConfig
from backup_agent.dumpstream import DumpReader
from backup_agent.engines.base import Engine, EngineError, InvalidDumpError, RunningDump, Versions
from backup_agent.events import EventSink
from backup_agent.state import CompletedJobs
from backup_agent.uploader import MultipartUpload, PartSink, UploadError
from backup_agent.version import VERSION as __version__
from backup_contracts.events import STDERR_TAIL_MAX, BackupFailed, BackupStarted, BackupSucceeded
from backup_contracts.jobs import Job
from backup_contracts.naming import RETENTION_TAG, manifest_key, retention_tag_value
from backup_contracts.redaction import redact

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
Stage = Literal["dump", "upload", "verify", "config"]
ProgressFn = Callable[[int, int], None]
INTERRUPTED = "interrupted by SIGTERM"


class _Failure(Exception):
    def __init__(self, stage: Stage, error: str, *, exit_code: int | None = None, stderr_tail: str = "") -> None:
        super().__init__(error)
        self.stage = stage
        self.error = error
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


@dataclass
class RunOutcome:
    """What one run produced: the final event and whether retrying the job could help."""

    event: BackupSucceeded | BackupFailed
    interrupted: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return isinstance(self.event, BackupSucceeded)

    @property
    def succeeded(self) -> BackupSucceeded:
        if not isinstance(self.event, BackupSucceeded):
            raise TypeError(f"the run failed: {self.event.error}")
        return self.event

    @property
    def failed(self) -> BackupFailed:
        if not isinstance(self.event, BackupFailed):
            raise TypeError("the run succeeded")
        return self.event


class BackupRun:
    """One attempt at one backup job; ``execute`` always ends with exactly one Succeeded or Failed event."""

    def __init__(
        self,
        job: Job,
        engine: Engine,
        config: AgentConfig,
        *,
        s3: Any,
        events: EventSink,
        cancel: threading.Event | None = None,
        progress: ProgressFn | None = None,
        completed: CompletedJobs | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.job = job
        self.engine = engine
        self.config = config
        self.s3 = s3
        self.events = events
        self.cancel = cancel or threading.Event()
        self.progress = progress
        self.completed = completed
        self.clock = clock
        self.started = clock()
        self.run_id = new_run_id(self.started)
        self.key = object_key_for(job, config, self.run_id, self.started, engine.extension)
        self._dump: RunningDump | None = None
        self._dump_lock = threading.Lock()

    # ------------------------------------------------------------------ events
    def _base(self) -> dict[str, Any]:
        return {
            "job_id": self.job.job_id,
            "run_id": self.run_id,
            "target": self.job.target,
            "agent": self.config.agent,
            "trigger": self.job.trigger,
            "started_at": self.started,
            "bucket": self.job.bucket,
            "key": self.key,
        }

    def _failed(self, failure: _Failure) -> BackupFailed:
        tail = redact(failure.stderr_tail)[-STDERR_TAIL_MAX:]
        return BackupFailed(
            **self._base(),
            finished_at=self.clock(),
            stage=failure.stage,
            exit_code=failure.exit_code,
            error=redact(failure.error)[:2000],
            stderr_tail=tail,
        )

    def terminate(self) -> None:
        """Ask the run to stop (SIGTERM path): the dump is terminated and the upload aborted."""
        self.cancel.set()
        with self._dump_lock:
            if self._dump is not None:
                self._dump.terminate()

    # ------------------------------------------------------------------ the run
    def execute(self) -> RunOutcome:
        log.info("backup started", extra={"ctx_job": self.job.job_id, "ctx_run": self.run_id, "ctx_key": self.key})
        self.events.emit(BackupStarted(**self._base()))
        t0 = time.monotonic()
        upload = MultipartUpload(
            self.s3,
            bucket=self.job.bucket,
            key=self.key,
            kms_key_id=self.config.kms_key_id,
            tagging=f"{RETENTION_TAG}={retention_tag_value(self.job.retention_class, 'daily')}",
            metadata={
                "engine": self.engine.name,
                "format": self.engine.format,
                "compression": self.config.compression.describe(),
                "job-id": self.job.job_id,
                "run-id": self.run_id,
                "manifest": manifest_key(self.key).rsplit("/", 1)[-1],
            },
            parts_in_flight=self.config.upload.parts_in_flight,
        )
        versions_found: list[Versions] = []  # tool/server versions are asked for while the dump runs
        versions_thread = threading.Thread(
            target=lambda: versions_found.append(self._versions()), name="tool-versions", daemon=True
        )
        versions_thread.start()
        try:
            result = self._stream(upload)
            versions_thread.join()
            versions = versions_found[0] if versions_found else Versions(None, None)
            manifest = self._manifest(versions, result)
            response = upload.complete()
            self._put_manifest(manifest)
        except _Failure as failure:
            upload.abort()
            event = self._failed(failure)
            log.error(
                "backup failed at stage %s: %s",
                failure.stage,
                event.error,
                extra={"ctx_job": self.job.job_id, "ctx_run": self.run_id},
            )
            self.events.emit(event)
            return RunOutcome(event, interrupted=failure.error == INTERRUPTED)
        except UploadError as exc:
            upload.abort()
            event = self._failed(_Failure("upload", str(exc)))
            log.error("backup failed at stage upload: %s", event.error, extra={"ctx_job": self.job.job_id})
            self.events.emit(event)
            return RunOutcome(event)
        except Exception as exc:
            # A bug or an unexpected library error: still never a backup, and still reported.
            log.exception("backup run crashed", extra={"ctx_job": self.job.job_id, "ctx_run": self.run_id})
            upload.abort()
            event = self._failed(_Failure("dump", f"agent error: {exc!r}"))
            self.events.emit(event)
            return RunOutcome(event)
        except BaseException:
            upload.abort()
            raise
        version_id = response.get("VersionId")
        succeeded = BackupSucceeded(
            **self._base(),
            finished_at=self.clock(),
            version_id=None if version_id in (None, "null") else version_id,
            bytes_in=manifest["bytes_in"],
            bytes_stored=manifest["bytes_stored"],
            sha256=manifest["sha256"],
            s3_checksum_sha256=upload.composite_sha256,
            engine=self.engine.name,
            format=self.engine.format,
            compression=manifest["compression"],
            tool_version=versions.tool_version,
            server_version=versions.server_version,
            duration_s=round(time.monotonic() - t0, 3),
        )
        log.info(
            "backup succeeded: %d bytes in, %d stored",
            succeeded.bytes_in,
            succeeded.bytes_stored,
            extra={"ctx_job": self.job.job_id, "ctx_run": self.run_id, "ctx_key": self.key},
        )
        if self.completed is not None:
            self.completed.record(
                self.job.job_id, run_id=self.run_id, event=succeeded.model_dump(mode="json"), emitted=False
            )
        self.events.emit(succeeded)
        if self.completed is not None:
            self.completed.record(self.job.job_id, emitted=True)
        return RunOutcome(succeeded, manifest=manifest)

    def _versions(self) -> Versions:
        try:
            versions = self.engine.versions()
        except Exception as exc:  # noqa: BLE001 - versions are informative; the dump decides success
            log.warning("could not read tool/server versions: %s", exc)
            return Versions(None, None)
        for warning in versions.warnings:
            log.warning("%s", warning, extra={"ctx_target": self.job.target})
        return versions

    def _stream(self, upload: MultipartUpload) -> dict[str, Any]:
        if self.cancel.is_set():
            raise _Failure("dump", INTERRUPTED)
        # The dump starts first: connecting and locking take the database a moment, and its first
        # output waits in the pipe while the multipart upload is created.
        try:
            dump = self.engine.start_dump()
        except EngineError as exc:
            raise _Failure("dump", str(exc), exit_code=exc.exit_code, stderr_tail=exc.stderr_tail) from exc
        except OSError as exc:
            raise _Failure("dump", f"cannot start the dump: {exc}") from exc
        with self._dump_lock:
            self._dump = dump
        if self.cancel.is_set():
            dump.terminate()
        try:
            upload.start()
        except UploadError as exc:
            dump.terminate()
            self._reap(dump)
            raise _Failure("upload", str(exc)) from exc
        validator = self.engine.validator()
        compression = self.config.compression
        cctx = zstandard.ZstdCompressor(compression_params=zstd_parameters(compression))
        sink = PartSink(upload)
        writer = cctx.stream_writer(sink, closefd=False, write_return_read=True)  # type: ignore[arg-type]
        reader = DumpReader(dump.stream)
        bytes_in = 0
        invalid: str | None = None
        try:
            while True:
                try:
                    chunk = reader.read()  # a view of the reader's buffer, consumed before the next read
                except (OSError, ValueError):
                    if self.cancel.is_set():  # terminate() closed the stream under the read
                        raise _Failure("dump", INTERRUPTED) from None
                    raise
                if not chunk:
                    break
                if self.cancel.is_set():
                    raise _Failure("dump", INTERRUPTED)
                bytes_in += len(chunk)
                if invalid is None:
                    try:
                        validator.feed(chunk)
                    except InvalidDumpError as exc:
                        invalid = str(exc) or "the dump stream is not well-formed"
                        dump.terminate()
                        break
                writer.write(chunk)
                if self.progress is not None:
                    self.progress(bytes_in, sink.bytes_stored)
            if self.cancel.is_set():
                raise _Failure("dump", INTERRUPTED)
            if invalid is None:
                writer.flush(zstandard.FLUSH_FRAME)
                sink.flush_last()
                if self.progress is not None:
                    self.progress(bytes_in, sink.bytes_stored)
        except UploadError as exc:
            dump.terminate()
            self._reap(dump)
            raise _Failure("upload", str(exc)) from exc
        except _Failure:
            dump.terminate()
            self._reap(dump)
            raise
        except BaseException:
            dump.terminate()
            self._reap(dump)
            raise
        outcome = self._reap(dump)
        if self.cancel.is_set():
            raise _Failure("dump", INTERRUPTED, exit_code=outcome.exit_code if outcome else None)
        if invalid is not None:
            raise _Failure(
                "verify",
                invalid,
                exit_code=outcome.exit_code if outcome else None,
                stderr_tail=outcome.stderr_tail if outcome else "",
            )
        if outcome is None:
            raise _Failure("dump", "the dump process could not be reaped")
        if outcome.exit_code != 0:
            raise _Failure(
                "dump",
                f"the dump tool exited with status {outcome.exit_code}",
                exit_code=outcome.exit_code,
                stderr_tail=outcome.stderr_tail,
            )
        if bytes_in == 0:
            raise _Failure("dump", "the dump produced no output", exit_code=0, stderr_tail=outcome.stderr_tail)
        try:
            facts = validator.finish()
        except InvalidDumpError as exc:
            raise _Failure(
                "verify", str(exc) or "the dump stream is not well-formed", exit_code=0, stderr_tail=outcome.stderr_tail
            ) from exc
        try:
            upload.wait()
        except UploadError as exc:
            raise _Failure("upload", str(exc)) from exc
        return {
            "bytes_in": bytes_in,
            "bytes_stored": sink.bytes_stored,
            "sha256": sink.sha256.hexdigest(),
            "parts": upload.next_part - 1,
            "validator": facts,
        }

    @staticmethod
    def _reap(dump: RunningDump) -> Any:
        try:
            return dump.wait()
        except EngineError as exc:
            log.warning("dump wait failed: %s", exc)
            return None

    def _manifest(self, versions: Versions, result: dict[str, Any]) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "agent": self.config.agent,
            "agent_version": __version__,
            "target": self.job.target,
            "job_id": self.job.job_id,
            "run_id": self.run_id,
            "trigger": self.job.trigger,
            "started_at": self.started.isoformat(),
            "bucket": self.job.bucket,
            "key": self.key,
            "engine": self.engine.name,
            "format": self.engine.format,
            "tool_version": versions.tool_version,
            "server_version": versions.server_version,
            "version_warnings": list(versions.warnings),
            "compression": self.config.compression.describe(),
            "bytes_in": result["bytes_in"],
            "bytes_stored": result["bytes_stored"],
            "sha256": result["sha256"],
            "sha256_of": "stored object bytes (zstd-compressed)",
            "parts": result["parts"],
            "validator": result["validator"],
            "restore_hint": f"backupctl restore (or: aws s3 cp s3://{self.job.bucket}/{self.key} - | zstd -d | "
            f"<{self.engine.name} restore of format {self.engine.format}>)",
        }

    def _put_manifest(self, manifest: dict[str, Any]) -> None:
        body = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        try:
            self.s3.put_object(
                Bucket=self.job.bucket,
                Key=manifest_key(self.key),
                Body=body,
                ContentType="application/json",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self.config.kms_key_id,
                Tagging=f"{RETENTION_TAG}={retention_tag_value(self.job.retention_class, 'daily')}",
            )
        except Exception as exc:  # noqa: BLE001
            # The backup object is complete and valid; the manifest's facts are also in the event.
            log.error("backup completed but its manifest could not be written: %s", exc)
