"""What every part of the restore coordinator shares: its settings, what it works with (the fleet, the
ledger, the ports to AWS, the clock) and the shape of its answers (``Outcome`` of one event,
``TickReport`` of one tick).

Also the one rule about time the parts share: a dispatched restore whose agent reports no end by the
job deadline plus ``RESTORE_END_GRACE`` is failed by the tick (``end_watch``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from backup_contracts.fleet import Fleet
from backup_contracts.naming import job_queue_name
from backup_functions.clock import Clock
from backup_functions.ledger import Ledger
from backup_functions.ledger.items import WATCH_RESTORE
from backup_functions.ledger.restores import RESTORE_END_GRACE
from backup_functions.ports import EventPublisher, JobQueue, Notifier, ObjectStore

if TYPE_CHECKING:
    from backup_functions.restore.wal_index import IndexObjects

__all__ = ["RESTORE_END_GRACE", "Context", "CoordinatorConfig", "Outcome", "TickReport", "end_watch"]


@dataclass(frozen=True)
class CoordinatorConfig:
    pipeline: str
    bus_name: str
    bucket: str
    queue_url_prefix: str
    approval_timeout: timedelta
    job_deadline: timedelta
    ledger_ttl: timedelta

    @classmethod
    def from_fleet(cls, fleet: Fleet, *, bus_name: str, bucket: str, queue_url_prefix: str) -> CoordinatorConfig:
        p = fleet.pipeline
        return cls(
            pipeline=p.name,
            bus_name=bus_name,
            bucket=bucket,
            queue_url_prefix=queue_url_prefix,
            approval_timeout=timedelta(minutes=p.approval_timeout_minutes),
            job_deadline=timedelta(minutes=p.job_deadline_minutes),
            ledger_ttl=timedelta(days=p.ledger_ttl_days),
        )

    def queue_url(self, agent: str) -> str:
        return self.queue_url_prefix + job_queue_name(self.pipeline, agent)


@dataclass
class Context:
    """The fleet, the ledger, the ports and the clock, held once for all parts of the coordinator
    (a port replaced here is replaced for every part)."""

    fleet: Fleet
    ledger: Ledger
    objects: ObjectStore
    jobs: JobQueue
    events: EventPublisher
    notifier: Notifier
    config: CoordinatorConfig
    clock: Clock
    indexes: IndexObjects | None = None  # the coordinator's own objects (WAL indexes of PITR restores)


@dataclass
class Outcome:
    """What handling one event did (logged, counted as metrics, asserted by tests)."""

    restore_id: str | None
    # rejected, awaiting-approval, dispatched, validated, running, interrupted, succeeded, failed, duplicate, ignored,
    # tick (a schedule delivered through the queue)
    action: str
    reason_code: str | None = None
    detail: str = ""
    duration_s: float | None = None
    drill: bool = False


@dataclass
class TickReport:
    drills_dispatched: list[str] = field(default_factory=list)
    drills_failed: list[str] = field(default_factory=list)
    approvals_expired: list[str] = field(default_factory=list)
    restores_timed_out: list[str] = field(default_factory=list)


def end_watch(job_deadline: datetime) -> tuple[str, datetime]:
    """The ledger watch (``Restores.transition``'s ``watch_until``) that fails a restore whose agent
    reports no end in time."""
    return (WATCH_RESTORE, job_deadline + RESTORE_END_GRACE)
