"""The streaming backup pipeline: dump stdout -> zstd -> SHA-256 -> S3 multipart upload.

Only a clean dump becomes a backup: the upload is completed only when the dump exited 0, produced
bytes, and the engine's validator accepted the whole stream. Anything else aborts the multipart
upload (nothing becomes visible) and reports ``Backup Failed`` with the stage that failed.

``BackupRun`` is one run from ``Backup Started`` to its one Succeeded or Failed event: it streams
the dump into the upload (``backup_agent.backup_stream``), asks for the tool and server versions
(and a database's own properties: encoding, collation, settings...) meanwhile, completes the upload,
writes the manifest beside the object, records the success locally and reports it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from backup_agent.admission import new_run_id, object_key_for
from backup_agent.backup_stream import INTERRUPTED, BackupFailure, BackupStream, ProgressFn, Streamed
from backup_agent.config import AgentConfig
from backup_agent.engines.base import Engine, Versions
from backup_agent.engines.database import DatabaseEngine
from backup_agent.events import EventSink
from backup_agent.state import CompletedJobs
from backup_agent.uploader import MultipartUpload, UploadError
from backup_agent.version import VERSION as __version__
from backup_contracts.events import STDERR_TAIL_MAX, BackupFailed, BackupStarted, BackupSucceeded
from backup_contracts.jobs import Job
from backup_contracts.naming import manifest_key
from backup_contracts.redaction import redact

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


@dataclass
class RunOutcome:
    """What one run produced: the final event and whether retrying the job could help."""

    event: BackupSucceeded | BackupFailed
    interrupted: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)
    report_error: str | None = None  # the backup is stored but its Succeeded event was not delivered

    @property
    def ok(self) -> bool:
        return isinstance(self.event, BackupSucceeded)

    @property
    def reported(self) -> bool:
        return self.report_error is None

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
        s3: S3Client,
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
        self._stream = BackupStream(engine, config.compression, cancel=self.cancel, progress=progress)

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

    def _failed(self, failure: BackupFailure) -> BackupFailed:
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
        self._stream.terminate()

    # ------------------------------------------------------------------ the run
    def execute(self) -> RunOutcome:
        log.info("backup started", extra={"ctx_job": self.job.job_id, "ctx_run": self.run_id, "ctx_key": self.key})
        self.events.emit(BackupStarted(**self._base()))
        t0 = time.monotonic()
        upload = self._new_upload()
        versions_found = self._look_up_versions()
        try:
            streamed = self._stream.run(upload)
            versions, properties = versions_found()
            manifest = self._manifest(versions, streamed, properties)
            response = upload.complete()
            self._put_manifest(manifest)
        except BackupFailure as failure:
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
            event = self._failed(BackupFailure("upload", str(exc)))
            log.error("backup failed at stage upload: %s", event.error, extra={"ctx_job": self.job.job_id})
            self.events.emit(event)
            return RunOutcome(event)
        except Exception as exc:
            # A bug or an unexpected library error: still never a backup, and still reported.
            log.exception("backup run crashed", extra={"ctx_job": self.job.job_id, "ctx_run": self.run_id})
            upload.abort()
            event = self._failed(BackupFailure("dump", f"agent error: {exc!r}"))
            self.events.emit(event)
            return RunOutcome(event)
        except BaseException:
            upload.abort()
            raise
        return self._succeeded(upload, response.get("VersionId"), manifest, versions, time.monotonic() - t0)

    def _new_upload(self) -> MultipartUpload:
        return MultipartUpload(
            self.s3,
            bucket=self.job.bucket,
            key=self.key,
            kms_key_id=self.config.kms_key_id,
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

    def _look_up_versions(self) -> Callable[[], tuple[Versions, dict[str, Any]]]:
        """Ask for the tool and server versions and the database's properties in a thread while the dump
        runs; the call returned waits."""
        found: list[tuple[Versions, dict[str, Any]]] = []
        thread = threading.Thread(
            target=lambda: found.append((self._versions(), self._database_properties())),
            name="tool-versions",
            daemon=True,
        )
        thread.start()

        def wait() -> tuple[Versions, dict[str, Any]]:
            thread.join()
            return found[0] if found else (Versions(None, None), {})

        return wait

    def _database_properties(self) -> dict[str, Any]:
        if not isinstance(self.engine, DatabaseEngine):
            return {}
        try:
            return self.engine.database_properties()
        except Exception as exc:  # noqa: BLE001 - a clone then keeps the destination's defaults, and says so
            log.warning("could not read the database's properties (a clone will use the server's defaults): %s", exc)
            return {}

    def _versions(self) -> Versions:
        try:
            versions = self.engine.versions()
        except Exception as exc:  # noqa: BLE001 - versions are informative; the dump decides success
            log.warning("could not read tool/server versions: %s", exc)
            return Versions(None, None)
        for warning in versions.warnings:
            log.warning("%s", warning, extra={"ctx_target": self.job.target})
        return versions

    def _succeeded(
        self,
        upload: MultipartUpload,
        version_id: str | None,
        manifest: dict[str, Any],
        versions: Versions,
        duration_s: float,
    ) -> RunOutcome:
        """Report the completed backup: recorded locally before its event, so a lost event is sent again."""
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
            duration_s=round(duration_s, 3),
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
        try:
            self.events.emit(succeeded)
        except Exception as exc:  # noqa: BLE001 - the backup is stored and recorded: its report is owed, not lost
            error = redact(str(exc))[:2000]
            log.error(
                "backup stored but its Backup Succeeded event was not delivered: %s",
                error,
                extra={"ctx_job": self.job.job_id, "ctx_run": self.run_id, "ctx_key": self.key},
            )
            return RunOutcome(succeeded, manifest=manifest, report_error=error)
        if self.completed is not None:
            self.completed.record(self.job.job_id, emitted=True)
        return RunOutcome(succeeded, manifest=manifest)

    # ------------------------------------------------------------------ the manifest
    def _manifest(self, versions: Versions, streamed: Streamed, properties: dict[str, Any]) -> dict[str, Any]:
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
            "bytes_in": streamed.bytes_in,
            "bytes_stored": streamed.bytes_stored,
            "sha256": streamed.sha256,
            "sha256_of": "stored object bytes (zstd-compressed)",
            "parts": streamed.parts,
            "validator": streamed.validator,
            "database_properties": properties,
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
                IfNoneMatch="*",  # a stored manifest is never replaced (the bucket policy requires it of agents)
            )
        except Exception as exc:  # noqa: BLE001
            # The backup object is complete and valid; the manifest's facts are also in the event.
            log.error("backup completed but its manifest could not be written: %s", exc)
