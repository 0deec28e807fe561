"""``RestoreRun``: one restore or drill job, stage by stage, to exactly one Succeeded or Failed event.

The stages themselves are listed in ``backup_agent.restore``; the download and the object check
live in ``source``, the report's checks in ``report``. This module strings them together, takes the
safety backup, feeds the engine, marks the destination while it is being written, and reports.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zstandard

from backup_agent import drill
from backup_agent.compression import DecompressedReader
from backup_agent.config import AgentConfig
from backup_agent.engines.base import Engine, EngineError, RecoveringEngine, Recovery, RestoreMode, RestoreReport
from backup_agent.engines.database import DatabaseEngine, VerifiedArchive
from backup_agent.events import EventSink
from backup_agent.pipeline import BackupRun, RunOutcome
from backup_agent.presigned import Opener, open_url
from backup_agent.restore.failure import INTERRUPTED, RestoreFailure, RestoreRefusedError, Stage
from backup_agent.restore.report import compact_verification, jsonable, verify_report
from backup_agent.restore.source import RawArchive, default_spool_dir, download_verified, spool_file
from backup_agent.restore.wal_replay import check_wal, wal_recovery
from backup_contracts.events import STDERR_TAIL_MAX, RestoreFailed, RestoreStarted, RestoreSucceeded
from backup_contracts.jobs import Job
from backup_contracts.redaction import redact

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)


@dataclass
class RestoreOutcome:
    event: RestoreSucceeded | RestoreFailed
    safety_backup: RunOutcome | None = None  # for in-place restores
    report: RestoreReport | None = None
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return isinstance(self.event, RestoreSucceeded)


class RestoreRun:
    """One attempt at one restore/drill job; ``execute`` ends with exactly one Succeeded or Failed event."""

    def __init__(
        self,
        job: Job,
        config: AgentConfig,
        *,
        engine_factory: Callable[[str], Engine],
        events: EventSink,
        s3: S3Client | None = None,
        safety_backup: Callable[[Job, Engine], RunOutcome] | None = None,
        opener: Opener = open_url,
        spool_dir: Path | None = None,
        cancel: threading.Event | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.job = job
        self.config = config
        self.engine_factory = engine_factory
        self.events = events
        self.s3 = s3
        self.safety_backup = safety_backup or self._pipeline_safety_backup
        self.opener = opener
        self.spool_dir = spool_dir
        self.cancel = cancel or threading.Event()
        self.clock = clock
        self.started = clock()
        self.mode: RestoreMode = job.mode or ("drill" if job.kind == "drill" else "clone")
        self.destination = job.destination or job.target
        self.restore_id = job.restore_id or job.job_id
        self.replaced_existing = False
        # Written before the engine writes to the destination, removed once the outcome is reported: if
        # it is found at the start, an earlier attempt of this job died while writing (kill -9, reboot).
        self.marker = Path(config.state_dir) / "restores" / f"{self.job.job_id}.writing"
        self.previously_touched = False
        self.safety_run_id: str | None = None
        self.recovery: Recovery | None = None  # a PITR restore's WAL replay (restore.wal_replay)

    # ------------------------------------------------------------------ events
    def _base(self) -> dict[str, Any]:
        source = self.job.source
        return {
            "restore_id": self.restore_id,
            "job_id": self.job.job_id,
            "agent": self.config.agent,
            "source_target": source.target if source else self.job.target,
            "source_run_id": source.run_id if source else "unknown",
            "destination": self.destination,
            "mode": self.mode,
            "started_at": self.started,
        }

    def _failed(self, failure: RestoreFailure) -> RestoreFailed:
        error = failure.error
        if self.previously_touched and not failure.touched:
            error += (
                ". An earlier attempt of this job stopped (crash, kill or reboot) while writing to the"
                f" destination {self.destination}: it may be half-restored"
            )
        return RestoreFailed(
            **self._base(),
            finished_at=self.clock(),
            stage=failure.stage,
            error=redact(error)[:2000],
            destination_touched=failure.touched or self.previously_touched,
            stderr_tail=redact(failure.stderr_tail)[-STDERR_TAIL_MAX:],
        )

    def _succeeded(self, outcome: RestoreOutcome, duration_s: float) -> RestoreSucceeded:
        verification = compact_verification(
            {**(outcome.report.verification if outcome.report else {}), "checks": outcome.checks}
        )
        return RestoreSucceeded(
            **self._base(),
            finished_at=self.clock(),
            duration_s=round(duration_s, 3),
            safety_backup_run_id=self.safety_run_id,
            verification=jsonable(verification),
        )

    def _end(self, outcome: RestoreOutcome, event: RestoreSucceeded | RestoreFailed) -> RestoreOutcome:
        """Report the run's one final event; from here on nobody is writing to the destination."""
        self.events.emit(event)
        self._clear_touching()
        outcome.event = event
        return outcome

    # ------------------------------------------------------------------ the run
    def execute(self) -> RestoreOutcome:
        if self.job.agent != self.config.agent:
            raise RestoreRefusedError(
                f"job {self.job.job_id} is for agent {self.job.agent!r}, this is {self.config.agent!r}"
            )
        log.info(
            "restore started",
            extra={"ctx_job": self.job.job_id, "ctx_restore": self.restore_id, "ctx_destination": self.destination},
        )
        self.previously_touched = self.marker.exists()
        if self.previously_touched:
            log.warning(
                "an earlier attempt of restore job %s died while writing to %s", self.job.job_id, self.destination
            )
        self.events.emit(RestoreStarted(**self._base()))
        t0 = time.monotonic()
        outcome = RestoreOutcome(event=None)  # type: ignore[arg-type]  # set by _end
        try:
            self._run_stages(outcome)
        except RestoreFailure as failure:
            failed = self._failed(failure)
            log.error(
                "restore failed at stage %s (destination touched: %s): %s",
                failure.stage,
                failure.touched,
                failed.error,
                extra={"ctx_job": self.job.job_id, "ctx_restore": self.restore_id},
            )
            return self._end(outcome, failed)
        succeeded = self._succeeded(outcome, time.monotonic() - t0)
        log.info(
            "restore succeeded in %.1f s",
            succeeded.duration_s,
            extra={"ctx_job": self.job.job_id, "ctx_restore": self.restore_id},
        )
        return self._end(outcome, succeeded)

    def _run_stages(self, outcome: RestoreOutcome) -> None:
        engine = self._check()
        with self._spool(engine) as spool, wal_recovery(self.job, engine, opener=self.opener) as self.recovery:
            archive = self._download(spool, engine)
            self._cancelled("download")
            outcome.report = self._restore_into_destination(engine, spool, outcome, archive)
        outcome.checks = self._verify(outcome.report)
        if self.replaced_existing:
            outcome.checks["replaced_existing"] = True
        if self.mode == "drill":
            outcome.checks["cleanup"] = (
                "kept: the scratch destination held data before the drill (a safety backup of it was taken)"
                if self.replaced_existing
                else self._cleanup(engine)
            )

    def _mark_touching(self) -> None:
        try:
            self.marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.marker.write_text(self.clock().isoformat(), encoding="utf-8")
        except OSError as exc:  # the restore still runs; only a crash report would be less precise
            log.warning("cannot write the restore marker %s: %s", self.marker, exc)

    def _clear_touching(self) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.marker.unlink()

    def _cancelled(self, stage: Stage) -> None:
        if self.cancel.is_set():
            raise RestoreFailure(stage, INTERRUPTED)

    # ------------------------------------------------------------------ 1. config
    def _check(self) -> Engine:
        job = self.job
        if job.kind not in ("restore", "drill"):
            raise RestoreFailure("config", f"job {job.job_id} is a {job.kind} job, not a restore")
        if job.source is None or job.source.presigned_url is None:
            raise RestoreFailure("config", f"job {job.job_id} carries no source object URL to restore from")
        if self.destination not in self.config.targets:
            known = ", ".join(sorted(self.config.targets))
            raise RestoreFailure(
                "config", f"destination {self.destination!r} is not in this host's config (known: {known})"
            )
        if self.mode not in ("clone", "in-place", "drill"):
            raise RestoreFailure("config", f"unknown restore mode {self.mode!r}")
        if self.clock() > job.deadline:
            raise RestoreFailure(
                "config", f"the job's deadline {job.deadline.isoformat()} has passed; request it again"
            )
        try:
            engine = self.engine_factory(self.destination)
        except Exception as exc:
            raise RestoreFailure("config", f"cannot set up the engine for {self.destination!r}: {exc}") from exc
        check_wal(job, engine)
        return engine

    # ------------------------------------------------------------------ 2./3. download + verify
    @contextlib.contextmanager
    def _spool(self, engine: Engine) -> Iterator[Path]:
        source = self.job.source
        assert source is not None  # noqa: S101 - checked in _check
        base = self.spool_dir or default_spool_dir(self.config.state_dir)
        raw_bytes = source.manifest_facts.get("bytes")
        need = raw_bytes if _seekable(engine) and isinstance(raw_bytes, int) else source.bytes_stored
        with spool_file(base, max(need, source.bytes_stored)) as spool:
            yield spool

    def _download(self, spool: Path, engine: Engine) -> VerifiedArchive | None:
        """The object into the spool: as it is stored, or, for an engine that restores from a seekable
        file, decompressed and format-checked on the way (``RawArchive``)."""
        source = self.job.source
        assert source is not None  # noqa: S101 - checked in _check
        raw = RawArchive(spool, source.compression, engine.validator) if _seekable(engine) else None
        download_verified(source, spool, opener=self.opener, cancel=self.cancel, restore_id=self.restore_id, raw=raw)
        return raw.verified() if raw is not None else None

    # ------------------------------------------------------------------ 4. safety backup
    def _safety_backup(self, engine: Engine) -> RunOutcome:
        job = self.job
        safety_job = Job(
            job_id=f"{job.job_id[:100]}.pre-restore",
            kind="backup",
            agent=self.config.agent,
            target=self.destination,
            trigger="pre-restore",
            issued_at=self.clock(),
            deadline=job.deadline,
            bucket=job.bucket,
            key_prefix=job.key_prefix,
            retention_class=job.retention_class,
        )
        try:
            outcome = self.safety_backup(safety_job, engine)
        except Exception as exc:
            raise RestoreFailure(
                "safety-backup", f"the safety backup of {self.destination} could not run: {exc}; restore aborted"
            ) from exc
        if not outcome.ok:
            failed = outcome.failed
            raise RestoreFailure(
                "safety-backup",
                f"the safety backup of {self.destination} failed at stage {failed.stage}: {failed.error};"
                " restore aborted, the destination was not touched",
                stderr_tail=failed.stderr_tail,
            )
        self.safety_run_id = outcome.event.run_id
        log.info("safety backup %s of %s done", self.safety_run_id, self.destination)
        return outcome

    def _pipeline_safety_backup(self, job: Job, engine: Engine) -> RunOutcome:
        if self.s3 is None:
            raise RuntimeError("no S3 client to upload the safety backup")
        return BackupRun(job, engine, self.config, s3=self.s3, events=self.events, cancel=self.cancel).execute()

    # ------------------------------------------------------------------ 5. restore
    def _restore_into_destination(
        self, engine: Engine, spool: Path, outcome: RestoreOutcome, archive: VerifiedArchive | None
    ) -> RestoreReport:
        """In-place: safety backup, then restore. Clone or drill: restore; a destination that turns out
        to hold data is replaced like an in-place restore, after a safety backup of it (never without one)."""
        if self.mode == "in-place":
            return self._replace_after_safety_backup(engine, spool, outcome, archive)
        try:
            return self._restore(engine, spool, self.mode, archive)
        except RestoreFailure as failure:
            if not failure.refused_non_empty:
                raise
            log.info("destination %s is not empty: safety backup, then replace", self.destination)
            report = self._replace_after_safety_backup(engine, spool, outcome, archive)
            self.replaced_existing = True
            return report

    def _replace_after_safety_backup(
        self, engine: Engine, spool: Path, outcome: RestoreOutcome, archive: VerifiedArchive | None
    ) -> RestoreReport:
        outcome.safety_backup = self._safety_backup(engine)
        self._cancelled("safety-backup")
        return self._restore(engine, spool, "in-place", archive)

    def _restore(
        self, engine: Engine, spool: Path, mode: RestoreMode, archive: VerifiedArchive | None
    ) -> RestoreReport:
        """Feed the engine the raw dump: the verified archive's file, or the spool decompressed as read."""
        source = self.job.source
        assert source is not None  # noqa: S101
        try:
            stream: Any = spool.open("rb") if archive is not None else DecompressedReader(spool, source.compression)
        except (ValueError, OSError) as exc:
            raise RestoreFailure("restore", f"cannot read the backup: {exc}") from exc
        self._mark_touching()
        try:
            if self.recovery is not None and isinstance(engine, RecoveringEngine):
                return engine.restore_with_wal(stream, mode=mode, recovery=self.recovery)
            if isinstance(engine, DatabaseEngine):
                properties = source.manifest_facts.get("database_properties")
                extra: dict[str, Any] = {"properties": properties if isinstance(properties, dict) else None}
                if archive is not None:
                    extra["archive"] = archive
                return engine.restore(stream, mode=mode, **extra)
            return engine.restore(stream, mode=mode)
        except EngineError as exc:
            touched = _touched_after(exc, engine)
            failure = RestoreFailure("restore", str(exc), touched=touched, stderr_tail=exc.stderr_tail)
            failure.refused_non_empty = mode in ("clone", "drill") and "refusing to" in str(exc)
            raise failure from exc
        except zstandard.ZstdError as exc:
            raise RestoreFailure("restore", f"the backup does not decompress: {exc}", touched=True) from exc
        except Exception as exc:
            raise RestoreFailure("restore", f"{type(exc).__name__}: {exc}", touched=True) from exc
        finally:
            stream.close()

    # ------------------------------------------------------------------ 6. verify
    def _verify(self, report: RestoreReport) -> dict[str, Any]:
        assert self.job.source is not None  # noqa: S101
        source = self.job.source
        checks, problems = verify_report(report.verification, source.manifest_facts, mode=self.mode, wal=source.wal)
        if problems:
            raise RestoreFailure("verify-restore", "; ".join(problems), touched=True)
        return checks

    # ------------------------------------------------------------------ 7. drill cleanup
    def _cleanup(self, engine: Engine) -> str:
        try:
            return drill.cleanup(engine)
        except Exception as exc:
            log.error("drill cleanup of %s failed: %s", self.destination, exc)
            raise RestoreFailure(
                "verify-restore",
                f"the drill restored and verified, but cleaning up {self.destination} failed: {exc}."
                " The next drill will back the leftover up and replace it; clean it by hand to avoid that",
                touched=True,
            ) from exc


def _seekable(engine: Engine) -> bool:
    return isinstance(engine, DatabaseEngine) and engine.seekable_restore


def _touched_after(exc: EngineError, engine: Engine) -> bool:
    """Whether a failed engine restore may have changed the destination.

    Engines refuse a non-empty clone destination before writing and drop a database they created
    when the restore fails; PostgreSQL in-place runs in a single transaction. Their messages say
    so; anything else counts as touched (never claim untouched without knowing).
    """
    if engine.name == "command":
        return True  # its restore command ran: we cannot know what it changed
    text = str(exc)
    untouched = ("refusing", "refused", "dropped again", "rolled back", "nothing was created")
    return not any(word in text for word in untouched)
