"""A request's decision and what it owes: rejected, validated (a dry run) or dispatched.

Each decision is one conditional transition of the request's ledger item, so only one decision is ever
taken; the same write records the side effects it owes (``owing.py``, the ledger's outbox), which are then
performed and cleared, so that a redelivered request or the next tick completes exactly what a crash or a
failed call left owing:

- rejected: a ``Restore Rejected`` event and an SNS message that says why;
- validated: a ``Restore Validated`` event that says what a dry run would restore;
- dispatched: the ``Job`` (kind restore or drill) is stored with its deadline and the watch on the
  agent's end, then sent to the destination agent's queue with a presigned GET URL for exactly that
  object version (signed at each send, never stored); a PITR target's job also names its WAL index
  (``wal_index``: written once before the job, its URL signed at each send too).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.bounds import LABEL_MAX, TEXT_MAX
from backup_contracts.events import RestoreRejected, RestoreRequested, RestoreValidated
from backup_contracts.formatting import one_line
from backup_contracts.jobs import Job, RestoreSource
from backup_contracts.naming import agent_prefix
from backup_functions.ledger import RestoreItem
from backup_functions.ledger.outbox import Owner
from backup_functions.ledger.restores import DISPATCHED, REJECTED, VALIDATED
from backup_functions.restore import messages
from backup_functions.restore.context import Context, Outcome, end_watch
from backup_functions.restore.owing import PRESIGN_MARGIN, Owing
from backup_functions.restore.planning import Plan
from backup_functions.restore.wal_index import IndexWriter

log = logging.getLogger(__name__)


class Decisions:
    """Takes a request's decision (one conditional transition) and carries out what it owes."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.owing = Owing(context)
        self.indexes = IndexWriter(context)

    def reject(
        self,
        restore_id: str,
        code: str,
        reason: str,
        *,
        now: datetime,
        item: RestoreItem | None = None,
        by: Owner = "handler",
    ) -> Outcome:
        """Reject the request unless another decision came first, and say why (``item``: the request as
        read, for the message; read here when not given)."""
        current = item or self.context.ledger.restores.get(restore_id)
        target = current.target if current else ""
        requested_by = current.requested_by if current else "unknown"
        event = RestoreRejected(
            restore_id=restore_id, target=target, reason_code=code, reason=reason, requested_by=requested_by
        )
        alert = messages.rejected(
            self.context.config.pipeline,
            restore_id=restore_id,
            target=target,
            code=code,
            reason=reason,
            requested_by=requested_by,
            now=now,
        )
        owed = {
            "event": self.owing.event(restore_id, REJECTED, event, now, by),
            "alert": self.owing.alert(restore_id, REJECTED, alert, now, by),
        }
        decided = self.context.ledger.restores.transition(
            restore_id, REJECTED, at=now, attributes={"reason_code": code, "rejection": reason}, owed=owed
        )
        if decided is None:  # someone else decided first
            return Outcome(restore_id, "duplicate", detail="already decided")
        log.warning("restore %s rejected: %s: %s", restore_id, code, reason)
        self.owing.settle(decided)
        return Outcome(restore_id, "rejected", code, reason)

    def announce_rejection(
        self, restore_id: str, *, target: str, code: str, reason: str, requested_by: str, now: datetime
    ) -> None:
        """The Restore Rejected event and the SNS message; nothing is stored (a reused restore_id or a
        refused approval leaves the request as it is)."""
        log.warning("restore %s rejected: %s: %s", restore_id, code, reason)
        self.context.events.publish(  # what the requester wrote, flattened and bounded as the contract says
            RestoreRejected(
                restore_id=restore_id,
                target=one_line(target, LABEL_MAX),
                reason_code=code,
                reason=one_line(reason, TEXT_MAX),
                requested_by=one_line(requested_by, LABEL_MAX),
            )
        )
        self.context.notifier.notify(
            messages.rejected(
                self.context.config.pipeline,
                restore_id=restore_id,
                target=target,
                code=code,
                reason=reason,
                requested_by=requested_by,
                now=now,
            )
        )

    def validated(
        self, restore_id: str, request: RestoreRequested, plan: Plan, facts: dict[str, Any], now: datetime
    ) -> Outcome:
        """A dry run passed every check: record it and say what would be restored."""
        source = plan.source
        event = RestoreValidated(
            restore_id=restore_id,
            target=plan.target.name,
            destination=plan.destination.name,
            mode="in-place" if plan.mode == "in-place" else "clone",
            requested_by=request.requested_by,
            source_run_id=source["run_id"],
            source_started_at=_as_datetime(source.get("started_at")),
            source_finished_at=_as_datetime(source.get("finished_at")),
            bytes_stored=int(source["bytes_stored"]),
            sha256=str(source["sha256"]),
            destination_agent=plan.destination_agent.name,
            requires_approval=plan.requires_approval,
        )
        owed = {"event": self.owing.event(restore_id, VALIDATED, event, now)}
        item = self.context.ledger.restores.transition(restore_id, VALIDATED, at=now, attributes=facts, owed=owed)
        if item is None:
            return Outcome(restore_id, "duplicate", detail="already decided")
        self.owing.settle(item)
        where = f" from the off-site vault s3://{source['bucket']}" if source.get("location") == "offsite" else ""
        return Outcome(restore_id, "validated", detail=f"would restore run {source['run_id']}{where}")

    def dispatch(
        self,
        restore_id: str,
        plan: Plan,
        facts: dict[str, Any],
        now: datetime,
        *,
        allowed_from: tuple[str, ...],
        by: Owner = "handler",
    ) -> Outcome:
        """Store the job, its deadline and the watch on its end if the request is still in one of
        ``allowed_from``, the job owed in the same write; then send it."""
        deadline = now + self.context.config.job_deadline
        job = self._job(restore_id, plan, now, deadline)
        item = self.context.ledger.restores.transition(
            restore_id,
            DISPATCHED,
            at=now,
            attributes={
                **facts,
                "job_id": job.job_id,
                "job": job.model_dump_json(exclude_none=True),
                "deadline": deadline,
            },
            watch_until=end_watch(deadline),
            allowed_from=allowed_from,
            owed={"job": self.owing.job(restore_id, job, now, by)},
        )
        if item is None:
            return Outcome(restore_id, "duplicate", detail="already dispatched or decided")
        self.owing.settle(item)
        log.info("restore job %s sent to agent %s", job.job_id, job.agent)
        return Outcome(
            restore_id,
            "dispatched",
            detail=f"job {job.job_id} to agent {plan.destination_agent.name}",
            drill=plan.kind == "drill",
        )

    def _job(self, restore_id: str, plan: Plan, now: datetime, deadline: datetime) -> Job:
        s = plan.source
        wal = None
        if s.get("wal"):  # a PITR target: the WAL index, written once, its URLs as long-lived as the base's
            wal = self.indexes.write(restore_id, s["target"], s["wal"], plan.wal_files, deadline + PRESIGN_MARGIN)
        return Job(
            job_id=restore_id,
            kind="drill" if plan.kind == "drill" else "restore",
            agent=plan.destination_agent.name,
            target=plan.destination.name,
            trigger="drill" if plan.kind == "drill" else "user",
            issued_at=now,
            deadline=deadline,
            bucket=self.context.config.bucket,
            key_prefix=agent_prefix(plan.destination_agent.name),
            retention_class=plan.destination.retention,
            restore_id=restore_id,
            destination=plan.destination.name,
            mode=plan.mode,
            source=RestoreSource(
                run_id=s["run_id"],
                target=s["target"],
                bucket=s["bucket"],
                key=s["key"],
                version_id=s.get("version_id"),
                sha256=s["sha256"],
                bytes_stored=int(s["bytes_stored"]),
                engine=s.get("engine") or plan.target.engine,
                format=s.get("format") or "unknown",
                compression=s.get("compression") or "zstd",
                started_at=_as_datetime(s.get("started_at")),
                manifest_facts=s.get("manifest_facts") or {},
                wal=wal,
            ),
        )


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return keys.parse_iso(str(value))
    except ValueError:
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            return None
