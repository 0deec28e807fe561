"""The queue consumer (``backup-agent run``): long poll, heartbeat, bounded concurrency, clean shutdown.

Message handling policy:
- malformed body (not a Job) or a job this agent refuses: logged with the reason and NOT deleted;
  the queue's redrive policy moves it to the DLQ after maxReceiveCount receives;
- job already completed (local state file, see ``state.py``): acknowledged without running again
  (a Succeeded event that was never emitted is emitted first);
- the same job already running here (a duplicate delivery): pushed back with a backoff;
- run succeeded: deleted; stored but its ``Backup Succeeded`` refused by the bus: released with a
  backoff, so the redelivery finds it done and puts the kept event (``backup_agent.outbox``);
- run failed: if the job's deadline has not passed, the message is made visible again after a
  jittered exponential backoff (30 s x 2^(receives-1), at most 15 min, full jitter); after the
  deadline it is deleted (the failure was reported; the watchdog alerts);
- restore and drill jobs go to the injected ``restore_runner`` (``backup_agent.restore.RestoreRun``
  in ``backup-agent run``; without one they are refused and left for the DLQ). A restore that ended
  (succeeded or failed, and reported) is deleted and recorded: it is never retried automatically,
  since the coordinator tracks it to its end and a retried in-place restore is not harmless. An
  interrupted restore is released for redelivery like a backup.
- SIGTERM: polling stops, running dumps are terminated, their uploads aborted, ``Backup Failed``
  (stage dump, "interrupted by SIGTERM") emitted, and their messages are released for redelivery
  25 s later (after any long poll still open in this process has ended); the process then exits 0.
  Messages a still-open long poll receives after the stop are released at once (visibility 0).
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from backup_agent.admission import JobRefusedError, check_job, config_failure
from backup_agent.config import AgentConfig
from backup_agent.engines.base import Engine
from backup_agent.events import EventSink
from backup_agent.pipeline import BackupRun
from backup_agent.state import CompletedJobs
from backup_agent.version import VERSION as __version__
from backup_agent.wal.status import wal_statuses
from backup_contracts.events import AgentHeartbeat, BackupSucceeded, Contract, RestoreFailed
from backup_contracts.jobs import Job
from backup_contracts.validation import describe_validation_error

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

LONG_POLL_S = 20
DRAIN_POLL_S = 1
BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 900
INTERRUPTED_RELEASE_S = LONG_POLL_S + 5


def retry_delay(receive_count: int, rng: Callable[[], float] = random.random) -> int:
    """Full-jitter exponential backoff in seconds for the receive_count-th failed attempt."""
    cap = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, receive_count - 1))
    return max(1, int(cap * rng()))


class Consumer:
    def __init__(
        self,
        config: AgentConfig,
        *,
        sqs: SQSClient,
        s3: S3Client,
        events: EventSink,
        engine_factory: Callable[[str], Engine],
        completed: CompletedJobs,
        restore_runner: RestoreRunner | None = None,
        drain: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.sqs = sqs
        self.s3 = s3
        self.events = events
        self.engine_factory = engine_factory
        self.completed = completed
        self.restore_runner = restore_runner
        self.drain = drain
        self.clock = clock
        self.stopping = threading.Event()
        self._slots = threading.Semaphore(config.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="job")
        self._lock = threading.Lock()
        self._running: dict[str, _Stoppable | None] = {}  # job_id -> run (None while preparing)
        self._active = 0
        self.stats = {"succeeded": 0, "failed": 0, "skipped": 0, "rejected": 0}
        self.keepalive_interval_s = max(5.0, config.visibility_timeout_s / 3)

    # ------------------------------------------------------------------ lifecycle
    def stop(self, reason: str = "SIGTERM") -> None:
        """Stop polling and interrupt running jobs (called from a signal handler: no blocking here)."""
        if not self.stopping.is_set():
            log.info("stopping (%s): interrupting %d running job(s)", reason, len(self._running))
        self.stopping.set()
        with self._lock:
            runs = [run for run in self._running.values() if run is not None]
        for run in runs:
            run.terminate()

    def run(self) -> int:
        """Poll until stopped (or, in drain mode, until the queue is empty); returns the exit code."""
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        poller = threading.Thread(target=self._poll_loop, name="poller", daemon=True)
        poller.start()
        while poller.is_alive() and not self.stopping.is_set():
            self.stopping.wait(0.2)
        if self.stopping.is_set():
            self.stop()
        self._pool.shutdown(wait=True)
        poller.join(timeout=1.0)
        log.info("agent stopped", extra={"ctx_stats": json.dumps(self.stats)})
        if self.drain and not self.stopping.is_set() and self.stats["failed"]:
            return 1
        return 0

    # ------------------------------------------------------------------ polling
    def _poll_loop(self) -> None:
        while not self.stopping.is_set():
            self._slots.acquire()
            free = 1
            while free < min(10, self.config.concurrency) and self._slots.acquire(blocking=False):
                free += 1
            try:
                messages = self._receive(free)
            except Exception:
                log.exception("receiving from the job queue failed; retrying in 5 s")
                messages = []
                self.stopping.wait(5)
            for _ in range(free - len(messages)):
                self._slots.release()
            if self.stopping.is_set():
                for message in messages:
                    self._release(message, 0)
                    self._slots.release()
                return
            for message in messages:
                with self._lock:
                    self._active += 1
                self._pool.submit(self._handle_and_release, message)
            if self.drain and not messages:
                with self._lock:
                    idle = self._active == 0
                if idle:
                    log.info("queue drained")
                    return

    def _receive(self, count: int) -> list[MessageTypeDef]:
        response = self.sqs.receive_message(
            QueueUrl=self.config.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=DRAIN_POLL_S if self.drain else LONG_POLL_S,
            VisibilityTimeout=self.config.visibility_timeout_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return list(response.get("Messages", []))

    # ------------------------------------------------------------------ one message
    def _handle_and_release(self, message: MessageTypeDef) -> None:
        try:
            self.handle(message)
        except Exception:
            log.exception("job handling crashed; the message will be redelivered")
            self._release(message, retry_delay(_receives(message)))
        finally:
            with self._lock:
                self._active -= 1
            self._slots.release()

    def handle(self, message: MessageTypeDef) -> str:
        """Handle one queue message; returns what happened (for logs and tests)."""
        try:
            job = Job.model_validate_json(message["Body"])
        except ValidationError as exc:
            reasons = describe_validation_error(exc, root="body", limit=5)
            log.error("malformed job message %s left for the DLQ: %s", message.get("MessageId"), reasons)
            self.stats["rejected"] += 1
            return "malformed"
        kinds = ("backup", "restore", "drill") if self.restore_runner is not None else ("backup",)
        try:
            check_job(job, self.config, kinds=kinds)
        except JobRefusedError as exc:
            log.error("job refused, left for the DLQ: %s", exc, extra={"ctx_job": job.job_id})
            self.stats["rejected"] += 1
            return "refused"
        done = self.completed.get(job.job_id)
        if done is not None and done.get("kind") in ("restore", "drill"):
            log.info("%s job %s already ended; acknowledged without running again", done["kind"], job.job_id)
            self._delete(message)
            self.stats["skipped"] += 1
            return "duplicate"
        if done is not None and "event" in done:
            if not done.get("emitted"):
                self.events.emit(BackupSucceeded.model_validate(done["event"]))
                self.completed.record(job.job_id, emitted=True)
            log.info(
                "job %s already succeeded (run %s); acknowledged without running again",
                job.job_id,
                done.get("run_id"),
                extra={"ctx_job": job.job_id},
            )
            self._delete(message)
            self.stats["skipped"] += 1
            return "duplicate"
        with self._lock:
            if job.job_id in self._running:
                duplicate = True
            else:
                duplicate = False
                self._running[job.job_id] = None
        if duplicate:
            log.info("job %s is already running here; duplicate delivery postponed", job.job_id)
            self._release(message, retry_delay(_receives(message)))
            return "running"
        stop_heartbeat = threading.Event()
        keeper = threading.Thread(target=self._keep_invisible, args=(message, stop_heartbeat), daemon=True)
        keeper.start()
        try:
            if job.kind == "backup":
                return self._run_job(job, message)
            return self._run_restore(job, message)
        finally:
            stop_heartbeat.set()
            keeper.join()
            with self._lock:
                self._running.pop(job.job_id, None)

    def _run_job(self, job: Job, message: MessageTypeDef) -> str:
        try:
            engine = self.engine_factory(job.target)
            run = BackupRun(
                job, engine, self.config, s3=self.s3, events=self.events, completed=self.completed, clock=self.clock
            )
        except JobRefusedError as exc:
            log.error("job refused, left for the DLQ: %s", exc, extra={"ctx_job": job.job_id})
            self.stats["rejected"] += 1
            return "refused"
        except Exception as exc:  # noqa: BLE001 - secrets or engine config unusable: report, then retry later
            log.error("job %s cannot start: %s", job.job_id, exc, extra={"ctx_job": job.job_id})
            self.events.emit(config_failure(job, self.config, str(exc), self.clock()))
            self.stats["failed"] += 1
            self._release(message, retry_delay(_receives(message)))
            return "failed"
        with self._lock:
            self._running[job.job_id] = run
        if self.stopping.is_set():
            run.cancel.set()
        outcome = run.execute()
        if outcome.ok and not outcome.reported:
            # stored and recorded; the redelivery finds it done and puts the event again
            self.stats["succeeded"] += 1
            self._release(message, retry_delay(_receives(message)))
            return "unreported"
        if outcome.ok:
            self._delete(message)
            self.stats["succeeded"] += 1
            return "succeeded"
        self.stats["failed"] += 1
        if outcome.interrupted:
            # Not 0: this process's own long poll may still be open and would receive it again.
            self._release(message, INTERRUPTED_RELEASE_S)
            return "interrupted"
        if self.clock() >= job.deadline:
            log.warning("job %s failed after its deadline; not retried", job.job_id)
            self._delete(message)
            return "failed"
        delay = retry_delay(_receives(message))
        log.info("job %s failed; retry in %d s", job.job_id, delay)
        self._release(message, delay)
        return "failed"

    def _run_restore(self, job: Job, message: MessageTypeDef) -> str:
        assert self.restore_runner is not None  # noqa: S101 - check_job refused restores otherwise
        cancel = threading.Event()
        handle = _CancelHandle(cancel)
        with self._lock:
            self._running[job.job_id] = handle
        if self.stopping.is_set():
            cancel.set()
        try:
            outcome = self.restore_runner(job, cancel)
        except JobRefusedError as exc:
            log.error("restore job refused, left for the DLQ: %s", exc, extra={"ctx_job": job.job_id})
            self.stats["rejected"] += 1
            return "refused"
        if isinstance(outcome.event, RestoreFailed) and cancel.is_set() and "interrupted" in outcome.event.error:
            self.stats["failed"] += 1
            self._release(message, INTERRUPTED_RELEASE_S)
            return "interrupted"
        self.completed.record(job.job_id, kind=job.kind, ok=outcome.ok, event=outcome.event.model_dump(mode="json"))
        self._delete(message)
        self.stats["succeeded" if outcome.ok else "failed"] += 1
        return "succeeded" if outcome.ok else "failed"

    def _keep_invisible(self, message: MessageTypeDef, done: threading.Event) -> None:
        while not done.wait(self.keepalive_interval_s):
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.config.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.config.visibility_timeout_s,
                )
            except Exception:
                log.warning("could not extend the job message's visibility", exc_info=True)

    def _delete(self, message: MessageTypeDef) -> None:
        self.sqs.delete_message(QueueUrl=self.config.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _release(self, message: MessageTypeDef, delay: int) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.config.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
            )
        except Exception:
            log.warning("could not change the message's visibility", exc_info=True)

    # ------------------------------------------------------------------ heartbeat
    def _heartbeat_loop(self) -> None:
        while True:
            self.send_heartbeat()
            if self.stopping.wait(self.config.heartbeat_minutes * 60):
                return

    def send_heartbeat(self) -> None:
        try:
            self.events.emit(
                AgentHeartbeat(
                    agent=self.config.agent,
                    version=__version__,
                    targets=sorted(self.config.targets),
                    sent_at=self.clock(),
                    wal=wal_statuses(self.config, self.engine_factory, self.clock),
                )
            )
        except Exception:
            log.warning("could not send the heartbeat", exc_info=True)


class _Stoppable(Protocol):
    def terminate(self) -> None: ...


class _Outcome(Protocol):
    @property
    def ok(self) -> bool: ...

    @property
    def event(self) -> Contract: ...


RestoreRunner = Callable[[Job, threading.Event], _Outcome]


class _CancelHandle:
    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel

    def terminate(self) -> None:
        self._cancel.set()


def _receives(message: MessageTypeDef) -> int:
    try:
        return int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    except ValueError:
        return 1
