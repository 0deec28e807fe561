"""The agent's restore executor: one restore or drill job from the coordinator, to a verified end.

Stages (``Restore Failed`` names the one that failed):

1. ``config``: the job is for this agent, names a destination in this host's config, carries its
   source object and a presigned URL, and its deadline has not passed.
2. ``download``: the object is streamed from the presigned URL (the agent has no standing read
   permission; the URL is for exactly that object version) into a private spool file, hashing every
   byte (SHA-256) and counting them while it is written. Disk use = the object's stored (compressed)
   size; memory stays one chunk. The spool is deleted at the end, whatever happens.
3. ``verify-object``: size and SHA-256 must equal the run's. **Nothing touches the destination
   before this passes**, so a tampered or truncated object can never be half-restored. (Verifying
   while streaming straight into the database would be cheaper on disk but could only notice a
   mismatch after the destination had been changed.)
4. ``safety-backup`` (in-place only): a normal backup of the destination through the agent's own
   backup pipeline (trigger ``pre-restore``, same events and ledger rows as any backup). If it fails
   the restore is aborted: the destination is untouched.
5. ``restore``: the spool is decompressed (zstd) as a stream into the engine's restore
   (``clone``/``drill``: into the destination target's own connection; ``in-place``: the target).
6. ``verify-restore``: the engine's report (integrity check, tables, rows) is checked, and compared
   with the facts in the backup's manifest (tables in the archive, bytes) when the job carries them.
7. drills only: the scratch destination is cleaned up (``backup_agent.drill.cleanup``).

Every run ends with exactly one ``Restore Succeeded`` (duration, verification, safety backup run
id) or ``Restore Failed`` (stage, error, ``destination_touched``: whether the destination may be
half-restored) event.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import zstandard

from backup_agent import drill
from backup_agent.config import AgentConfig
from backup_agent.engines.base import Engine, EngineError, RestoreReport
from backup_agent.events import EventSink
from backup_agent.pipeline import BackupRun, RunOutcome
from backup_contracts.events import STDERR_TAIL_MAX, RestoreFailed, RestoreStarted, RestoreSucceeded
from backup_contracts.jobs import Job
from backup_contracts.redaction import redact

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_TIMEOUT_S = 60.0
Stage = Literal["download", "verify-object", "safety-backup", "restore", "verify-restore", "config"]
Opener = Callable[[str, float], BinaryIO]


class RestoreRefusedError(Exception):
    """The job cannot be run by this agent at all (wrong agent); not retryable, not reported."""


class _Failure(Exception):
    def __init__(self, stage: Stage, error: str, *, touched: bool = False, stderr_tail: str = "") -> None:
        super().__init__(error)
        self.stage = stage
        self.error = error
        self.touched = touched
        self.stderr_tail = stderr_tail
        self.refused_non_empty = False


@dataclass
class RestoreOutcome:
    event: RestoreSucceeded | RestoreFailed
    safety_backup: RunOutcome | None = None  # for in-place restores
    report: RestoreReport | None = None
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return isinstance(self.event, RestoreSucceeded)


def open_url(url: str, timeout: float) -> BinaryIO:
    """GET a presigned URL (http(s) only; no credentials of ours are involved)."""
    if not url.lower().startswith(("https://", "http://")):
        raise ValueError(f"refusing to open a non-http(s) URL scheme: {url.split(':', 1)[0]}")
    request = urllib.request.Request(url, method="GET")  # noqa: S310 - scheme checked above
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310


def _safe_url(url: str) -> str:
    """The URL without its query string (the signature is a bearer credential: never log it)."""
    return url.split("?", 1)[0]


class _ZstdStream:
    """A file-like reader over the decompressed spool (``read(n)`` returns at most n bytes)."""

    def __init__(self, path: Path, compression: str) -> None:
        self._file = path.open("rb")
        if compression.lower().startswith("zstd"):
            self._reader: Any = zstandard.ZstdDecompressor().stream_reader(self._file, read_across_frames=True)
        elif compression.lower() in ("", "none", "identity"):
            self._reader = self._file
        else:
            self._file.close()
            raise ValueError(f"unsupported compression {compression!r}")
        self.bytes_out = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._reader.read(size if size and size > 0 else CHUNK)
        self.bytes_out += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._reader.close()
        self._file.close()


class RestoreRun:
    """One attempt at one restore/drill job; ``execute`` ends with exactly one Succeeded or Failed event."""

    def __init__(
        self,
        job: Job,
        config: AgentConfig,
        *,
        engine_factory: Callable[[str], Engine],
        events: EventSink,
        s3: Any = None,
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
        self.mode = job.mode or ("drill" if job.kind == "drill" else "clone")
        self.destination = job.destination or job.target
        self.restore_id = job.restore_id or job.job_id
        self.touched = False
        self.replaced_existing = False
        # Written before the engine writes to the destination, removed once the outcome is reported: if
        # it is found at the start, an earlier attempt of this job died while writing (kill -9, reboot).
        self.marker = Path(config.state_dir) / "restores" / f"{self.job.job_id}.writing"
        self.previously_touched = False
        self.safety_run_id: str | None = None

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

    def _failed(self, failure: _Failure) -> RestoreFailed:
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
        outcome = RestoreOutcome(event=None)  # type: ignore[arg-type]  # set below
        try:
            engine = self._check()
            with self._spool() as spool:
                self._download(spool)
                self._cancelled("download")
                if self.mode == "in-place":
                    outcome.safety_backup = self._safety_backup(engine)
                    self._cancelled("safety-backup")
                    report = self._restore(engine, spool, "in-place")
                else:
                    try:
                        report = self._restore(engine, spool, self.mode)
                    except _Failure as failure:
                        if not failure.refused_non_empty:
                            raise
                        # The destination already holds data: replace it like an in-place restore,
                        # after a safety backup of it (never overwrite without one).
                        log.info("destination %s is not empty: safety backup, then replace", self.destination)
                        outcome.safety_backup = self._safety_backup(engine)
                        self._cancelled("safety-backup")
                        report = self._restore(engine, spool, "in-place")
                        self.replaced_existing = True
            outcome.report = report
            outcome.checks = self._verify(report)
            if self.replaced_existing:
                outcome.checks["replaced_existing"] = True
            if self.mode == "drill":
                outcome.checks["cleanup"] = (
                    "kept: the scratch destination held data before the drill (a safety backup of it was taken)"
                    if self.replaced_existing
                    else self._cleanup(engine)
                )
        except _Failure as failure:
            event = self._failed(failure)
            log.error(
                "restore failed at stage %s (destination touched: %s): %s",
                failure.stage,
                failure.touched,
                event.error,
                extra={"ctx_job": self.job.job_id, "ctx_restore": self.restore_id},
            )
            self.events.emit(event)
            self._clear_touching()
            outcome.event = event
            return outcome
        verification = compact_verification(
            {**(outcome.report.verification if outcome.report else {}), "checks": outcome.checks}
        )
        succeeded = RestoreSucceeded(
            **self._base(),
            finished_at=self.clock(),
            duration_s=round(time.monotonic() - t0, 3),
            safety_backup_run_id=self.safety_run_id,
            verification=_jsonable(verification),
        )
        log.info(
            "restore succeeded in %.1f s",
            succeeded.duration_s,
            extra={"ctx_job": self.job.job_id, "ctx_restore": self.restore_id},
        )
        self.events.emit(succeeded)
        self._clear_touching()
        outcome.event = succeeded
        return outcome

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
            raise _Failure(stage, "interrupted by SIGTERM", touched=self.touched)

    # ------------------------------------------------------------------ 1. config
    def _check(self) -> Engine:
        job = self.job
        if job.kind not in ("restore", "drill"):
            raise _Failure("config", f"job {job.job_id} is a {job.kind} job, not a restore")
        if job.source is None or job.source.presigned_url is None:
            raise _Failure("config", f"job {job.job_id} carries no source object URL to restore from")
        if self.destination not in self.config.targets:
            known = ", ".join(sorted(self.config.targets))
            raise _Failure("config", f"destination {self.destination!r} is not in this host's config (known: {known})")
        if self.mode not in ("clone", "in-place", "drill"):
            raise _Failure("config", f"unknown restore mode {self.mode!r}")
        if self.clock() > job.deadline:
            raise _Failure("config", f"the job's deadline {job.deadline.isoformat()} has passed; request it again")
        try:
            return self.engine_factory(self.destination)
        except Exception as exc:
            raise _Failure("config", f"cannot set up the engine for {self.destination!r}: {exc}") from exc

    # ------------------------------------------------------------------ 2./3. download + verify
    @contextlib.contextmanager
    def _spool(self) -> Iterator[Path]:
        base = self.spool_dir or _default_spool(self.config)
        base.mkdir(parents=True, exist_ok=True)
        assert self.job.source is not None  # noqa: S101 - checked in _check
        need = self.job.source.bytes_stored
        free = shutil.disk_usage(base).free
        if free < need + 64 * 1024 * 1024:
            raise _Failure(
                "download",
                f"not enough free disk in {base} for the object: {need} bytes needed (+64 MiB), {free} free",
            )
        directory = Path(tempfile.mkdtemp(prefix="restore-", dir=base))  # 0700
        try:
            yield directory / "object"
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _download(self, spool: Path) -> None:
        source = self.job.source
        assert source is not None  # noqa: S101
        assert source.presigned_url is not None  # noqa: S101
        url = str(source.presigned_url)
        last_error = ""
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                digest, size = self._fetch(url, spool, limit=source.bytes_stored)
            except _Failure:
                raise
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                last_error = _describe_http_error(exc)
                retryable = not isinstance(exc, urllib.error.HTTPError) or exc.code >= 500 or exc.code == 429
                log.warning(
                    "download attempt %d of %s failed: %s",
                    attempt,
                    _safe_url(url),
                    last_error,
                    extra={"ctx_restore": self.restore_id},
                )
                if not retryable:
                    break
                time.sleep(min(2.0 * attempt, 5.0))
                continue
            if size != source.bytes_stored:
                raise _Failure(
                    "verify-object",
                    f"the object has {size} bytes, the backup run recorded {source.bytes_stored}:"
                    " refusing to restore it (destination untouched)",
                )
            if digest != source.sha256:
                raise _Failure(
                    "verify-object",
                    f"the object's SHA-256 is {digest}, the backup run recorded {source.sha256}:"
                    " the object was changed or corrupted; refusing to restore it (destination untouched)",
                )
            return
        raise _Failure("download", f"cannot download the backup object {_safe_url(url)}: {last_error}")

    def _fetch(self, url: str, spool: Path, *, limit: int) -> tuple[str, int]:
        sha = hashlib.sha256()
        size = 0
        with self.opener(url, DOWNLOAD_TIMEOUT_S) as response, spool.open("wb") as out:
            while True:
                if self.cancel.is_set():
                    raise _Failure("download", "interrupted by SIGTERM")
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:  # never spool more than the run recorded: a bigger object is wrong anyway
                    raise _Failure(
                        "verify-object",
                        f"the object is larger than the {limit} bytes the backup run recorded:"
                        " refusing to restore it (destination untouched)",
                    )
                sha.update(chunk)
                out.write(chunk)
        return sha.hexdigest(), size

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
            raise _Failure(
                "safety-backup", f"the safety backup of {self.destination} could not run: {exc}; restore aborted"
            ) from exc
        if not outcome.ok:
            failed = outcome.failed
            raise _Failure(
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
    def _restore(self, engine: Engine, spool: Path, mode: str) -> RestoreReport:
        source = self.job.source
        assert source is not None  # noqa: S101
        try:
            stream = _ZstdStream(spool, source.compression)
        except (ValueError, OSError) as exc:
            raise _Failure("restore", f"cannot read the backup: {exc}") from exc
        self._mark_touching()
        try:
            return engine.restore(stream, mode=mode)  # type: ignore[arg-type]
        except EngineError as exc:
            touched = _touched_after(exc, engine)
            failure = _Failure("restore", str(exc), touched=touched, stderr_tail=exc.stderr_tail)
            failure.refused_non_empty = mode in ("clone", "drill") and "refusing to" in str(exc)
            raise failure from exc
        except zstandard.ZstdError as exc:
            raise _Failure("restore", f"the backup does not decompress: {exc}", touched=True) from exc
        except Exception as exc:
            raise _Failure("restore", f"{type(exc).__name__}: {exc}", touched=True) from exc
        finally:
            stream.close()

    # ------------------------------------------------------------------ 6. verify
    def _verify(self, report: RestoreReport) -> dict[str, Any]:
        assert self.job.source is not None  # noqa: S101
        checks, problems = verify_report(report.verification, self.job.source.manifest_facts, mode=self.mode)
        if problems:
            raise _Failure("verify-restore", "; ".join(problems), touched=True)
        return checks

    # ------------------------------------------------------------------ 7. drill cleanup
    def _cleanup(self, engine: Engine) -> str:
        try:
            return drill.cleanup(engine)
        except Exception as exc:
            log.error("drill cleanup of %s failed: %s", self.destination, exc)
            raise _Failure(
                "verify-restore",
                f"the drill restored and verified, but cleaning up {self.destination} failed: {exc}."
                " The next drill refuses a non-empty scratch destination: clean it by hand",
                touched=True,
            ) from exc


def verify_report(
    verification: dict[str, object], expected: dict[str, Any], *, mode: str
) -> tuple[dict[str, Any], list[str]]:
    """Check an engine's restore report and compare it with the manifest's facts.

    Returns (checks passed, by name → value; problems, in words). Rules: an integrity check, where
    the engine reports one, must say ok; no table of the archive may be missing; every table the
    archive had must be there (tables restored minus tables that were not in the archive ≥ tables
    in the manifest); byte counts (SQLite: the restored file) must equal the manifest's.
    """
    checks: dict[str, Any] = {}
    problems: list[str] = []
    integrity = verification.get("integrity_check")
    if integrity is not None:
        if integrity != "ok":
            problems.append(f"integrity check: {integrity}")
        else:
            checks["integrity_check"] = "ok"
    missing = verification.get("missing_tables")
    if isinstance(missing, list):
        if missing:
            problems.append(f"tables of the archive missing after the restore: {', '.join(map(str, missing[:10]))}")
        else:
            checks["missing_tables"] = 0
    restored = verification.get("tables")
    extra = verification.get("extra_tables")
    extra_count = len(extra) if isinstance(extra, list) else 0
    archived = expected.get("tables", expected.get("create_tables"))
    if archived is None:
        archived = verification.get("archive_tables")
    if isinstance(restored, int) and isinstance(archived, int):
        if restored - extra_count < archived:
            problems.append(f"{restored - extra_count} tables restored, the backup had {archived}")
        else:
            checks["tables"] = f"{restored - extra_count} restored of {archived} in the backup"
    if isinstance(expected.get("bytes"), int) and isinstance(verification.get("bytes"), int):
        if verification["bytes"] != expected["bytes"]:
            problems.append(f"{verification['bytes']} bytes restored, the backup had {expected['bytes']}")
        else:
            checks["bytes"] = expected["bytes"]
    if isinstance(verification.get("total_rows"), int):
        checks["total_rows"] = verification["total_rows"]
    checks["mode"] = mode
    return checks, problems


ROWS_IN_EVENT_MAX = 50


def compact_verification(verification: dict[str, Any]) -> dict[str, Any]:
    """Keep the event (EventBridge: 256 KiB) and the ledger item (DynamoDB: 400 KB) small whatever the
    number of tables: per-table row counts beyond the 50 largest are summarised, long lists cut."""
    result = dict(verification)
    rows = result.get("rows")
    if isinstance(rows, dict) and len(rows) > ROWS_IN_EVENT_MAX:
        largest = sorted(rows.items(), key=lambda item: (-int(item[1]), str(item[0])))[:ROWS_IN_EVENT_MAX]
        result["rows"] = dict(largest)
        result["rows_note"] = f"{ROWS_IN_EVENT_MAX} largest of {len(rows)} tables shown"
    for name, value in list(result.items()):
        if isinstance(value, list) and len(value) > ROWS_IN_EVENT_MAX:
            result[name] = [*value[:ROWS_IN_EVENT_MAX], f"... {len(value) - ROWS_IN_EVENT_MAX} more"]
    return result


def _touched_after(exc: EngineError, engine: Engine) -> bool:
    """Whether a failed engine restore may have changed the destination.

    Engines refuse a non-empty clone destination before writing and drop a database they created
    when the restore fails; PostgreSQL in-place runs in a single transaction. Their messages say
    so; anything else counts as touched (never claim untouched without knowing).
    """
    if engine.name == "command":
        return True  # its restore command ran: we cannot know what it changed
    text = str(exc)
    untouched = ("refusing", "refused", "dropped again", "rolled back")
    return not any(word in text for word in untouched)


def _default_spool(config: AgentConfig) -> Path:
    candidate = Path(config.state_dir) / "spool"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return candidate
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "backup-agent-spool"


def _describe_http_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        hint = {403: " (URL expired or signature invalid)", 404: " (object or version gone)"}.get(exc.code, "")
        return f"HTTP {exc.code}{hint}"
    return f"{type(exc).__name__}: {exc}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
