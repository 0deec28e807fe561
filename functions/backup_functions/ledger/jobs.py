"""Job rows (``TARGET#<t>/JOB#<job_id>``) and the dispatcher's own items (tick marker, unsent jobs).

A job row is created once (conditional put: however many dispatcher ticks overlap, one creates a slot's
row and only that one sends the job), moves dispatched → started → terminal on the agent's events
(conditional: a Started after the end changes nothing), and carries the watch that makes the watchdog
page when it never starts or never ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.events import BackupFailed, BackupStarted, BackupSucceeded
from backup_functions.ledger.client import WATCH_ATTRIBUTES, LedgerClient, Update, epoch_seconds, watch
from backup_functions.ledger.items import (
    DISPATCHED,
    STARTED,
    WATCH_END,
    WATCH_START,
    DispatchMarker,
    JobRow,
    TargetState,
    UnsentJob,
)

DISPATCH_PK = "DISPATCH"
DISPATCH_MARKER_SK = "STATE"
UNSENT_PK = "DISPATCH#UNSENT"


@dataclass(frozen=True)
class NewJob:
    """A job row the dispatcher wants to create."""

    job_id: str
    target: str
    agent: str
    engine: str
    trigger: str
    slot: datetime | None  # the schedule slot; None for on-demand jobs
    issued_at: datetime
    deadline: datetime  # the run must have ended by then
    start_deadline: datetime  # the run must have started by then
    rpo: timedelta
    expires_at: datetime
    message: str  # the Job message JSON, kept so that an unsent job can be re-sent as is
    attributes: Mapping[str, Any]  # further job fields (bucket, key_prefix, retention_class, kind)

    def item(self) -> dict[str, Any]:
        return {
            keys.PK: keys.target_pk(self.target),
            keys.SK: keys.job_sk(self.job_id),
            "type": "job",
            **self.attributes,
            "job_id": self.job_id,
            "target": self.target,
            "agent": self.agent,
            "trigger": self.trigger,
            "slot": self.slot,
            "state": DISPATCHED,
            "issued_at": self.issued_at,
            "deadline": self.deadline,
            "start_deadline": self.start_deadline,
            "message": self.message,
            **watch(self.target, WATCH_START, self.start_deadline),
            keys.TTL_ATTRIBUTE: epoch_seconds(self.expires_at),
        }


class Jobs:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    # ----------------------------------------------------------------- dispatcher
    def create(self, job: NewJob) -> bool:
        """Create a job row once; True when THIS call created it (and so must send it)."""
        return self._client.put_if_absent(job.item())

    def get_many(self, jobs: Iterable[tuple[str, str]]) -> dict[str, JobRow]:
        """Job rows by job id, for (target, job_id) pairs (BatchGetItem)."""
        found = self._client.batch_get((keys.target_pk(t), keys.job_sk(j)) for t, j in jobs)
        return {row.job_id: row for row in map(JobRow.model_validate, found.values())}

    def dispatch_view(self, wanted: Iterable[tuple[str, str]]) -> tuple[dict[str, TargetState], set[tuple[str, str]]]:
        """What the dispatcher needs, in one BatchGetItem pass (100 keys per call).

        ``wanted`` is (target, job_id) of each target's latest slot. Returns the target states by
        target, and the (target, job_id) pairs whose job row already exists.
        """
        pairs = list(wanted)
        item_keys: list[tuple[str, str]] = []
        for target, job_id in pairs:
            item_keys += [(keys.target_pk(target), keys.STATE_SK), (keys.target_pk(target), keys.job_sk(job_id))]
        found = self._client.batch_get(item_keys)
        states = {
            state.target: state
            for state in (TargetState.model_validate(item) for (_, sk), item in found.items() if sk == keys.STATE_SK)
        }
        existing = {(t, j) for t, j in pairs if (keys.target_pk(t), keys.job_sk(j)) in found}
        return states, existing

    def marker(self) -> DispatchMarker | None:
        """``last_tick_at`` and ``fleet_hash`` of the last completed dispatcher tick."""
        return DispatchMarker.parse(self._client.get(DISPATCH_PK, DISPATCH_MARKER_SK))

    def advance_marker(self, now: datetime, fleet_hash: str) -> bool:
        """Record a completed tick; only moves forward (an older, slower tick never moves it back)."""
        update = Update().set(type="dispatch", last_tick_at=now, fleet_hash=fleet_hash)
        condition = f"{update.absent('last_tick_at')} OR {update.name('last_tick_at')} < {update.value(now)}"
        return self._client.update(DISPATCH_PK, DISPATCH_MARKER_SK, update, condition) is not None

    def record_unsent(self, *, target: str, job_id: str, agent: str, message: str) -> None:
        """Remember a job whose SQS send failed, so that the next dispatcher tick re-sends it."""
        self._client.put(
            {
                keys.PK: UNSENT_PK,
                keys.SK: f"{target}#{job_id}",
                "type": "unsent",
                "target": target,
                "job_id": job_id,
                "agent": agent,
                "message": message,
            }
        )

    def unsent(self) -> list[UnsentJob]:
        """Jobs waiting to be re-sent (one small partition: one Query)."""
        return [UnsentJob.model_validate(item) for item in self._client.query(UNSENT_PK)]

    def clear_unsent(self, target: str, job_id: str) -> None:
        self._client.delete(UNSENT_PK, f"{target}#{job_id}")

    # ----------------------------------------------------------------- audit
    def started(self, event: BackupStarted, *, default_deadline: datetime, expires_at: datetime) -> bool:
        """dispatched (or unknown) → started; the watch becomes "end" at the job's deadline."""
        update = self._run_update(event, STARTED, default_deadline, expires_at)
        update.set(**{keys.WATCH_SHARD: keys.watch_shard(event.target), keys.WATCH_KIND: WATCH_END})
        update.set_from(keys.WATCH_DEADLINE, "deadline", keys.iso(default_deadline))
        return self._move(event, update, (DISPATCHED,))

    def ended(
        self, event: BackupSucceeded | BackupFailed, state: str, *, default_deadline: datetime, expires_at: datetime
    ) -> bool:
        """dispatched|started (or unknown) → terminal; the watch attributes are removed."""
        update = self._run_update(event, state, default_deadline, expires_at).set(finished_at=event.finished_at)
        update.remove(*WATCH_ATTRIBUTES)
        return self._move(event, update, (DISPATCHED, STARTED))

    @staticmethod
    def _run_update(event: BackupStarted, state: str, default_deadline: datetime, expires_at: datetime) -> Update:
        """What a run's event writes on its job row (a row the dispatcher never wrote gets a deadline)."""
        update = Update().set(
            type="job",
            job_id=event.job_id,
            target=event.target,
            agent=event.agent,
            state=state,
            run_id=event.run_id,
            started_at=event.started_at,
        )
        return update.set_if_absent(deadline=default_deadline, **{keys.TTL_ATTRIBUTE: epoch_seconds(expires_at)})

    def _move(self, event: BackupStarted, update: Update, allowed_from: tuple[str, ...]) -> bool:
        """Apply ``update`` if the row is absent or in one of ``allowed_from``."""
        condition = f"{update.absent('state')} OR {update.one_of('state', allowed_from)}"
        return (
            self._client.update(keys.target_pk(event.target), keys.job_sk(event.job_id), update, condition) is not None
        )

    # ----------------------------------------------------------------- watchdog
    def clear_superseded_watch(self, row: JobRow, *, now: datetime, reason: str) -> bool:
        """Stop watching a job row that a newer good backup superseded (only if its watch is unchanged)."""
        update = Update().set(watch_cleared_at=now, watch_cleared_reason=reason).remove(*WATCH_ATTRIBUTES)
        condition = (
            f"{update.equals(keys.WATCH_KIND, row.watch_kind)}"
            f" AND {update.equals(keys.WATCH_DEADLINE, keys.iso(row.watch_deadline) if row.watch_deadline else '')}"
        )
        return self._client.update(row.pk, row.sk, update, condition) is not None
