"""Dispatcher domain logic: which targets are due, one ledger row per job, jobs to the agents' queues.

Per scheduled tick at ``now`` (see docs/ledger.md, "Dispatcher"):

1. The tick marker (``last_tick_at`` of the last completed tick, and a fleet fingerprint) says
   which slots earlier ticks already handled. Only targets whose latest slot at or before
   ``now`` is newer are looked at (every target when the fleet changed or there is no marker):
   one BatchGetItem pass (100 keys per call) reads their state items and that slot's job row.
   A tick with nothing due costs 3 DynamoDB calls whatever the fleet size.
2. A target is due when the job row of its latest slot does not exist. A missed or late tick
   therefore catches up with ONE job for the latest slot, never a burst of the slots it missed.
3. Each due job row is created with a conditional PutItem (attribute_not_exists): two
   overlapping ticks cannot both create a slot's row, and only the creator sends the job.
   A target without a state item gets one (conditional, once in its life) holding the first
   RPO watch: first dispatch + rpo.
4. Jobs go out with SendMessageBatch, 10 per call per agent queue. Entries that fail are retried
   once; those still failing are recorded in the ledger's unsent partition and re-sent by the
   next tick. The marker advances when the tick completes.

Delivery is at-least-once towards the agent (SQS itself is at-least-once; the agent dedupes on
job_id). If the function dies between the ledger write and the send, the job is never sent: the
job row's "start" watch then makes the watchdog alert "dispatched but never started".
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from backup_contracts import ledger as keys
from backup_contracts.events import BackupRequested
from backup_contracts.fleet import Agent, Fleet, Target
from backup_contracts.jobs import Job
from backup_contracts.naming import agent_prefix, job_queue_name
from backup_contracts.schedule import Schedule
from backup_functions.ledger import DISPATCHED, Ledger, NewJob, TargetState
from backup_functions.ports import SQS_BATCH_MAX, JobQueue, QueueMessage

log = logging.getLogger(__name__)

START_GRACE_EXTRA = timedelta(minutes=15)
MAX_JOB_ID = 128


@dataclass(frozen=True)
class DispatchConfig:
    pipeline: str
    bucket: str
    queue_url_prefix: str
    dispatcher_interval: timedelta
    job_deadline: timedelta
    ledger_ttl: timedelta
    write_workers: int = 8  # concurrent conditional PutItems (boto3 clients are thread-safe)

    @classmethod
    def from_fleet(cls, fleet: Fleet, *, bucket: str, queue_url_prefix: str) -> DispatchConfig:
        p = fleet.pipeline
        return cls(
            pipeline=p.name,
            bucket=bucket,
            queue_url_prefix=queue_url_prefix,
            dispatcher_interval=timedelta(minutes=p.dispatcher_interval_minutes),
            job_deadline=timedelta(minutes=p.job_deadline_minutes),
            ledger_ttl=timedelta(days=p.ledger_ttl_days),
        )

    @property
    def start_grace(self) -> timedelta:
        """How long a dispatched job may wait for its Started: 2 dispatcher intervals + 15 min,
        never past the job deadline."""
        return min(2 * self.dispatcher_interval + START_GRACE_EXTRA, self.job_deadline)

    def queue_url(self, agent: str) -> str:
        return self.queue_url_prefix + job_queue_name(self.pipeline, agent)


@dataclass
class TickResult:
    targets: int = 0
    checked: int = 0  # targets whose latest slot is newer than the last completed tick
    due: int = 0
    created: int = 0
    already_dispatched: int = 0
    sent: int = 0
    resent: int = 0
    not_sent: list[str] = field(default_factory=list)


@dataclass
class RequestResult:
    status: str  # dispatched | duplicate | rejected | not-sent
    job_id: str | None = None
    reason: str | None = None


class SendFailures(RuntimeError):
    """Jobs that could not be sent after a retry (recorded for the next tick)."""


@lru_cache(maxsize=1024)
def _schedule(expression: str, timezone: str) -> Schedule:
    return Schedule(expression, timezone)


def latest_slot(target: Target, now: datetime) -> datetime | None:
    return _schedule(target.schedule, target.timezone).latest_slot_at_or_before(now)


def requested_job_id(target: str, request_id: str) -> str:
    """Deterministic job id for an on-demand request (so a repeated request is one job)."""
    job_id = f"{target}.req.{request_id}"
    if len(job_id) <= MAX_JOB_ID:
        return job_id
    return f"{target}.req.{hashlib.sha256(request_id.encode()).hexdigest()[:40]}"


def new_job(
    cfg: DispatchConfig,
    agent: Agent,
    target: Target,
    *,
    job_id: str,
    trigger: str,
    slot: datetime | None,
    now: datetime,
) -> NewJob:
    job = Job(
        job_id=job_id,
        kind="backup",
        agent=agent.name,
        target=target.name,
        trigger=trigger,
        issued_at=now,
        deadline=now + cfg.job_deadline,
        bucket=cfg.bucket,
        key_prefix=agent_prefix(agent.name),
        retention_class=target.retention,
    )
    return NewJob(
        job_id=job_id,
        target=target.name,
        agent=agent.name,
        engine=target.engine,
        trigger=trigger,
        slot=slot,
        issued_at=now,
        deadline=job.deadline,
        start_deadline=now + cfg.start_grace,
        rpo=target.rpo_delta,
        expires_at=now + cfg.ledger_ttl,
        message=job.model_dump_json(exclude_none=True),
        attributes={
            "kind": job.kind,
            "bucket": job.bucket,
            "key_prefix": job.key_prefix,
            "retention_class": job.retention_class,
        },
    )


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Outgoing:
    job_id: str
    target: str
    agent: str
    message: str


def _send_batches(queue: JobQueue, queue_url: str, jobs: Sequence[Outgoing]) -> list[Outgoing]:
    """SendMessageBatch in groups of 10; returns the jobs that failed."""
    failed: list[Outgoing] = []
    for start in range(0, len(jobs), SQS_BATCH_MAX):
        chunk = {job.job_id: job for job in jobs[start : start + SQS_BATCH_MAX]}
        try:
            refused = queue.send_batch(queue_url, [QueueMessage(job.job_id, job.message) for job in chunk.values()])
        except Exception as exc:  # noqa: BLE001 - any send error: retry, then record as unsent
            log.warning("SendMessageBatch to %s failed for %d job(s): %s", queue_url, len(chunk), exc)
            failed.extend(chunk.values())
            continue
        failed.extend(chunk[message.job_id] for message in refused)
    return failed


def send_jobs(queue: JobQueue, cfg: DispatchConfig, jobs: Iterable[Outgoing]) -> tuple[list[Outgoing], list[Outgoing]]:
    """Send jobs grouped per agent queue; failed entries are retried once. Returns (sent, failed)."""
    by_agent: dict[str, list[Outgoing]] = defaultdict(list)
    for job in jobs:
        by_agent[job.agent].append(job)
    sent: list[Outgoing] = []
    failed: list[Outgoing] = []
    for agent, queued in by_agent.items():
        url = cfg.queue_url(agent)
        first = _send_batches(queue, url, queued)
        still = _send_batches(queue, url, first) if first else []
        failed_ids = {job.job_id for job in still}
        sent.extend(job for job in queued if job.job_id not in failed_ids)
        failed.extend(still)
    return sent, failed


def _record_unsent(ledger: Ledger, failed: Sequence[Outgoing]) -> None:
    for job in failed:
        ledger.jobs.record_unsent(target=job.target, job_id=job.job_id, agent=job.agent, message=job.message)
        log.error("target %s: job %s not sent; the next tick re-sends it", job.target, job.job_id)


def fleet_fingerprint(fleet: Fleet) -> str:
    """Changes when a target is added or its schedule changes (then a tick checks every target)."""
    spec = sorted(f"{a.name}/{t.name}/{t.schedule}/{t.timezone}" for a, t in fleet.targets())
    return hashlib.sha256("\n".join(spec).encode()).hexdigest()[:32]


def _outgoing(job: NewJob) -> Outgoing:
    return Outgoing(job.job_id, job.target, job.agent, job.message)


# --------------------------------------------------------------------------- entry points


def _create_jobs(
    ledger: Ledger, wanted: Sequence[NewJob], states: Mapping[str, TargetState], workers: int
) -> tuple[list[NewJob], int]:
    """Conditionally create each job row (and a first target state where none exists), in order.
    Returns the rows created and how many creations failed: a failed one is left for the next tick (the
    marker does not advance past it), the others are still sent by this one."""

    missed: list[str] = []  # first states not written (list.append is thread-safe)

    def create(job: NewJob) -> bool | None:
        try:
            if not ledger.jobs.create(job):
                return False
        except Exception:
            log.exception("target %s: job row %s not created; the next tick creates it", job.target, job.job_id)
            return None
        state = states.get(job.target)
        if state is None:
            watched = _bootstrap(ledger, job.target, job.agent, job.engine, rpo=job.rpo, at=job.issued_at)
        else:  # no watch: back in the fleet after a removal cleared it
            watched = state.watch_deadline is not None or _rearm(ledger, job)
        if not watched:
            missed.append(job.target)
        return True

    if workers <= 1 or len(wanted) <= 1:
        outcomes = [create(job) for job in wanted]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dispatch") as pool:
            outcomes = list(pool.map(create, wanted))
    created = [job for job, made in zip(wanted, outcomes, strict=True) if made]
    return created, sum(1 for made in outcomes if made is None) + len(missed)


def _bootstrap(ledger: Ledger, target: str, agent: str, engine: str, *, rpo: timedelta, at: datetime) -> bool:
    """A first target state (conditional, once); a failure is repaired by the next tick that sees the
    target's row without a state (the marker does not advance past it)."""
    try:
        ledger.targets.bootstrap(target, agent=agent, engine=engine, rpo=rpo, first_dispatched_at=at)
    except Exception:
        log.exception("target %s: first state not written; the next tick writes it", target)
        return False
    return True


def _rearm(ledger: Ledger, job: NewJob) -> bool:
    """A target back in the fleet after a removal cleared its RPO watch is watched again from this dispatch;
    a failure is repaired by the next tick (the marker does not advance past it)."""
    try:
        ledger.targets.rearm_rpo_watch(job.target, rpo=job.rpo, dispatched_at=job.issued_at)
    except Exception:
        log.exception("target %s: RPO watch not re-armed; the next tick does it", job.target)
        return False
    return True


def tick(fleet: Fleet, ledger: Ledger, queue: JobQueue, cfg: DispatchConfig, now: datetime) -> TickResult:
    """One scheduled dispatcher run at ``now``."""
    pairs = fleet.targets()
    result = TickResult(targets=len(pairs))
    fingerprint = fleet_fingerprint(fleet)
    marker = ledger.jobs.marker()
    since: datetime | None = None  # slots at or before the last completed tick were handled by it
    if marker and marker.fleet_hash == fingerprint:
        since = marker.last_tick_at

    latest: list[tuple[Agent, Target, datetime, str]] = []
    for agent, target in pairs:
        slot = latest_slot(target, now)
        if slot is not None and (since is None or slot > since):
            latest.append((agent, target, slot, keys.scheduled_job_id(target.name, slot)))
    result.checked = len(latest)
    states, existing = (
        ledger.jobs.dispatch_view((target.name, job_id) for _, target, _, job_id in latest) if latest else ({}, set())
    )
    unsent = ledger.jobs.unsent()  # every read before the first write: a failed read changes nothing
    for agent, target, slot, job_id in latest:
        if (target.name, job_id) in existing and target.name not in states:  # a bootstrap an earlier tick missed
            first = new_job(cfg, agent, target, job_id=job_id, trigger="schedule", slot=slot, now=now)
            _bootstrap(ledger, target.name, agent.name, target.engine, rpo=target.rpo_delta, at=first.issued_at)

    wanted = [
        new_job(cfg, agent, target, job_id=job_id, trigger="schedule", slot=slot, now=now)
        for agent, target, slot, job_id in latest
        if (target.name, job_id) not in existing
    ]
    result.due = len(wanted)
    created, not_created = _create_jobs(ledger, wanted, states, cfg.write_workers)
    result.created = len(created)
    result.already_dispatched = len(wanted) - len(created) - not_created

    # Jobs a previous tick (or a Backup Requested) could not send.
    resend: list[Outgoing] = []
    if unsent:
        rows = ledger.jobs.get_many((u.target, u.job_id) for u in unsent)
        for entry in unsent:
            row = rows.get(entry.job_id)
            if row is None or row.state != DISPATCHED:
                ledger.jobs.clear_unsent(entry.target, entry.job_id)  # started, ended or expired: nothing to send
                continue
            resend.append(Outgoing(entry.job_id, entry.target, entry.agent, entry.message))

    sent, failed = send_jobs(queue, cfg, [*map(_outgoing, created), *resend])
    resent_ids = {job.job_id for job in resend}
    result.sent = sum(1 for out in sent if out.job_id not in resent_ids)
    for out in sent:
        if out.job_id in resent_ids:
            ledger.jobs.clear_unsent(out.target, out.job_id)
            result.resent += 1
    _record_unsent(ledger, [job for job in failed if job.job_id not in resent_ids])
    result.not_sent = [job.job_id for job in failed]
    if not_created:
        raise SendFailures(f"{not_created} job row(s) or first states not written; the next tick writes them")
    ledger.jobs.advance_marker(now, fingerprint)
    return result


def request(
    fleet: Fleet, ledger: Ledger, queue: JobQueue, cfg: DispatchConfig, *, now: datetime, req: BackupRequested
) -> RequestResult:
    """An on-demand ``Backup Requested``: one job with trigger "user", idempotent on request_id."""
    try:
        agent, target = fleet.target(req.target)
    except KeyError:
        known = ", ".join(sorted(t.name for _, t in fleet.targets()))
        return RequestResult("rejected", reason=f"unknown target {req.target!r}; the fleet's targets are: {known}")
    job_id = requested_job_id(target.name, req.request_id)
    job = new_job(cfg, agent, target, job_id=job_id, trigger="user", slot=None, now=now)
    if not ledger.jobs.create(job):
        return RequestResult("duplicate", job_id=job_id, reason="this request_id was already dispatched")
    _, failed = send_jobs(queue, cfg, [_outgoing(job)])
    if failed:
        _record_unsent(ledger, failed)
        return RequestResult("not-sent", job_id=job_id, reason="queue refused the job; the next tick re-sends it")
    return RequestResult("dispatched", job_id=job_id)
