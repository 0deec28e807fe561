"""A request's decision and what it owes: rejected, validated (a dry run) or dispatched.

Each decision is one conditional transition of the request's ledger item, so only one decision is ever
taken; the side effects follow the transition and are marked when done (``notified_at``,
``job_sent_at``), so that a redelivered request completes exactly what a crash left owing:

- rejected: a ``Restore Rejected`` event and an SNS message that says why;
- validated: a ``Restore Validated`` event that says what a dry run would restore;
- dispatched: the ``Job`` (kind restore or drill) is stored with its deadline and the watch on the
  agent's end, then sent to the destination agent's queue with a presigned GET URL for exactly that
  object version (signed at each send, never stored).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.bounds import LABEL_MAX, TEXT_MAX
from backup_contracts.events import RestoreRejected, RestoreRequested, RestoreValidated
from backup_contracts.formatting import one_line
from backup_contracts.jobs import Job, RestoreSource
from backup_contracts.naming import agent_prefix
from backup_functions.ledger import RestoreItem
from backup_functions.ledger.restores import DISPATCHED, REJECTED, VALIDATED
from backup_functions.restore import messages
from backup_functions.restore.context import Context, Outcome, end_watch
from backup_functions.restore.planning import Plan

log = logging.getLogger(__name__)

PRESIGN_MARGIN = timedelta(minutes=15)  # the URL outlives the job deadline by this much


class Decisions:
    """Takes a request's decision (one conditional transition) and carries out what it owes."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def reject(self, restore_id: str, code: str, reason: str, *, now: datetime) -> Outcome:
        """Reject the request unless another decision came first, and say why."""
        item = self.context.ledger.restores.transition(
            restore_id, REJECTED, at=now, attributes={"reason_code": code, "rejection": reason}
        )
        if item is None:  # someone else decided first
            return Outcome(restore_id, "duplicate", detail="already decided")
        self.notify_rejection(item, now)
        return Outcome(restore_id, "rejected", code, reason)

    def notify_rejection(self, item: RestoreItem, now: datetime) -> None:
        """Announce the stored rejection ``item`` and mark it announced."""
        self.announce_rejection(
            item.restore_id,
            target=item.target,
            code=str(item.reason_code),
            reason=str(item.rejection),
            requested_by=item.requested_by,
            now=now,
        )
        self.context.ledger.restores.mark(item.restore_id, notified_at=now)

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
        if self.context.ledger.restores.transition(restore_id, VALIDATED, at=now, attributes=facts) is None:
            return Outcome(restore_id, "duplicate", detail="already decided")
        source = plan.source
        self.context.events.publish(
            RestoreValidated(
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
        )
        self.context.ledger.restores.mark(restore_id, notified_at=now)
        return Outcome(restore_id, "validated", detail=f"would restore run {source['run_id']}")

    def dispatch(
        self,
        restore_id: str,
        plan: Plan,
        facts: dict[str, Any],
        now: datetime,
        *,
        allowed_from: tuple[str, ...],
    ) -> Outcome:
        """Store the job, its deadline and the watch on its end if the request is still in one of
        ``allowed_from``; then send it."""
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
        )
        if item is None:
            return Outcome(restore_id, "duplicate", detail="already dispatched or decided")
        self.send_job(item, now)
        return Outcome(
            restore_id,
            "dispatched",
            detail=f"job {job.job_id} to agent {plan.destination_agent.name}",
            drill=plan.kind == "drill",
        )

    def _job(self, restore_id: str, plan: Plan, now: datetime, deadline: datetime) -> Job:
        s = plan.source
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
            ),
        )

    def send_job(self, item: RestoreItem, now: datetime) -> None:
        """Send the stored job with a freshly signed URL (the URL itself is never stored)."""
        job = Job.model_validate_json(str(item.job))
        assert job.source is not None  # noqa: S101 - restore jobs always carry their source
        deadline = job.deadline
        expires = int(max((deadline - now + PRESIGN_MARGIN).total_seconds(), 60))
        url = self.context.objects.presign_get(job.source.bucket, job.source.key, job.source.version_id, expires)
        data = json.loads(job.model_dump_json(exclude_none=True))
        data["source"]["presigned_url"] = url
        body = Job.model_validate(data).model_dump_json(exclude_none=True)
        self.context.jobs.send(self.context.config.queue_url(job.agent), body)
        self.context.ledger.restores.mark(job.job_id, job_sent_at=now)
        log.info("restore job %s sent to agent %s (URL valid %d s)", job.job_id, job.agent, expires)


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
