"""The agent's reports on a restore job: ``Restore Started``, ``Restore Succeeded``, ``Restore Failed``.

Nothing is believed on an event's word (design rule 8): a report counts only when it was sent by the
agent the job went to — the event's source ``backup.agent.<agent>``, which only that agent's role may
put, not the ``agent`` field it declares — and it is about the job as it was stored at dispatch, field by
field (``job_id``, ``source_target``, ``source_run_id``, ``destination``, ``mode``). Any other report is
logged with what differed and answered ``ignored``: it moves no state, records no drill RTO, sends no
alert. A report about a request that has no job yet (awaiting an approval) is ignored the same way.

The request's state follows its reports (dispatched → running → succeeded | failed); a report that
comes too late for its state changes nothing. An agent stopped before it touched the destination
hands the job back to its queue (an ``interrupted`` failure): the restore is dispatched again, not
failed. A failure alerts; a drill's outcome and its duration (the measured RTO) are recorded on the
source target's state. Both are owed by the transition itself (``owing.py``): a redelivered report that
comes "too late" for the state still completes what the first delivery could not.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from backup_contracts.events import RestoreFailed, RestoreStarted, RestoreSucceeded
from backup_contracts.jobs import Job
from backup_contracts.naming import agent_event_source
from backup_functions.ledger import RestoreItem
from backup_functions.ledger.outbox import Owed, Owner
from backup_functions.ledger.restores import DISPATCHED, FAILED, RUNNING, SUCCEEDED
from backup_functions.restore import messages
from backup_functions.restore.context import Context, Outcome, end_watch
from backup_functions.restore.owing import Owing

log = logging.getLogger(__name__)


class AgentReports:
    """Follows a restore through its agent's reports, and settles a failure whoever found it."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.owing = Owing(context)

    def started(self, event: RestoreStarted, sender: str | None) -> Outcome:
        now = self.context.clock.now()
        item = self.context.ledger.restores.get(event.restore_id)
        if (ignored := self._unbelieved(item, event, sender)) is not None:
            return ignored
        assert item is not None  # noqa: S101 - _unbelieved ignores a report about no request
        deadline = item.deadline or now + self.context.config.job_deadline
        updated = self.context.ledger.restores.transition(
            event.restore_id,
            RUNNING,
            at=now,
            attributes={"agent": event.agent, "started_at": event.started_at},
            watch_until=end_watch(deadline),
        )
        if updated is None:
            return Outcome(event.restore_id, "duplicate", detail=f"already {item.state}")
        return Outcome(event.restore_id, "running", drill=item.drill)

    def _unbelieved(self, item: RestoreItem | None, event: RestoreStarted, sender: str | None) -> Outcome | None:
        """``ignored`` (logged with every difference) unless the report comes from the job's agent and
        matches the stored job field by field; None when it may count."""
        kind = type(event).__name__
        if item is None:
            log.warning("%s for unknown restore %s (sent by %s) ignored", kind, event.restore_id, sender)
            return Outcome(event.restore_id, "ignored", detail="unknown restore id")
        differences = report_differences(item, event, sender)
        if not differences:
            return None
        log.warning(
            "restore %s: %s ignored, it does not match the dispatched job: %s",
            event.restore_id,
            kind,
            "; ".join(differences),
            extra={"differences": differences, "sender": sender},
        )
        return Outcome(event.restore_id, "ignored", detail="; ".join(differences), drill=item.drill)

    def succeeded(self, event: RestoreSucceeded, sender: str | None) -> Outcome:
        now = self.context.clock.now()
        current = self.context.ledger.restores.get(event.restore_id)
        if (ignored := self._unbelieved(current, event, sender)) is not None:
            return ignored
        assert current is not None  # noqa: S101 - _unbelieved ignores a report about no request
        attributes = {
            **_ran(event),
            "duration_s": event.duration_s,
            "verification": event.verification,
            "safety_backup_run_id": event.safety_backup_run_id,
        }
        done = current.model_copy(update={**attributes, "state": SUCCEEDED})
        owed: dict[str, Owed] = {}
        rto_s = self._measured_rto(current, event, now) if current.drill else event.duration_s
        if current.drill:
            owed["drill-result"] = self.owing.drill_result(
                done, now, ok=True, rto_s=rto_s, error=None, finished_at=event.finished_at
            )
            objective = self._rto_objective(current.target)
            if objective is not None and rto_s > objective:
                alert = messages.drill_rto_breached(
                    self.context.config.pipeline, item=done, rto_s=rto_s, objective_s=objective, now=now
                )
                owed["alert"] = self.owing.alert(event.restore_id, messages.RTO_BREACHED, alert, now)
        else:
            alert = messages.restore_succeeded(self.context.config.pipeline, item=done, now=now)
            owed["alert"] = self.owing.alert(event.restore_id, SUCCEEDED, alert, now)
        item = self.context.ledger.restores.transition(
            event.restore_id, SUCCEEDED, at=now, attributes=attributes, owed=owed
        )
        if item is None:
            return self._late(event.restore_id)
        self.owing.settle(item)
        return Outcome(event.restore_id, "succeeded", duration_s=rto_s, drill=item.drill)  # a drill's: its RTO

    @staticmethod
    def _measured_rto(item: RestoreItem, event: RestoreSucceeded, now: datetime) -> float:
        """The drill's RTO as a real restore would see it: from its dispatch to the verified end as the
        coordinator hears of it, queue wait included (not the agent's own duration, which starts when it
        takes the job); the agent's duration if the drill's start is unknown."""
        if item.requested_at is None:
            return event.duration_s
        return max(event.duration_s, (now - item.requested_at).total_seconds())

    def _rto_objective(self, target: str) -> float | None:
        for _, declared in self.context.fleet.targets():
            if declared.name == target and declared.rto_delta is not None:
                return declared.rto_delta.total_seconds()
        return None

    def failed(self, event: RestoreFailed, sender: str | None) -> Outcome:
        now = self.context.clock.now()
        current = self.context.ledger.restores.get(event.restore_id)
        if (ignored := self._unbelieved(current, event, sender)) is not None:
            return ignored
        assert current is not None  # noqa: S101 - _unbelieved ignores a report about no request
        if event.error.startswith("interrupted") and not event.destination_touched:
            return self._interrupted(event, now)
        attributes = {
            **_ran(event),
            "stage": event.stage,
            "error": event.error[:2000],
            "destination_touched": event.destination_touched,
            "stderr_tail": event.stderr_tail or None,
        }
        return self.fail(
            current,
            now,
            event.error,
            attributes=attributes,
            finished_at=event.finished_at,
            allowed_from=(DISPATCHED, RUNNING),
        )

    def _interrupted(self, event: RestoreFailed, now: datetime) -> Outcome:
        """The agent was stopped (SIGTERM) before it touched the destination and hands the job back to
        its queue: the restore is dispatched again, not failed (the deadline watch still applies)."""
        current = self.context.ledger.restores.get(event.restore_id)
        if current is None:
            return Outcome(event.restore_id, "ignored", detail="unknown restore id")
        item = self.context.ledger.restores.transition(
            event.restore_id,
            DISPATCHED,
            at=now,
            attributes={"interrupted_at": event.finished_at, "last_error": event.error[:500]},
            watch_until=end_watch(current.deadline or now),
            allowed_from=(DISPATCHED, RUNNING),
        )
        if item is None:
            return self._late(event.restore_id)
        log.info("restore %s interrupted before touching %s; the agent retries it", event.restore_id, event.destination)
        return Outcome(event.restore_id, "interrupted", detail=event.error, drill=current.drill)

    def fail(
        self,
        current: RestoreItem,
        now: datetime,
        error: str,
        *,
        attributes: dict[str, Any],
        finished_at: datetime,
        allowed_from: tuple[str, ...] | None = None,
        by: Owner = "handler",
    ) -> Outcome:
        """Fail a restore, whoever failed it (its agent, the tick, a drill that could not start), with what
        that owes in the same write: the failure alert and, for a drill, its outcome on its source target."""
        failed = current.model_copy(update={**attributes, "state": FAILED})
        owed = self.owing.failure(failed, now, error, finished_at=finished_at, by=by)
        item = self.context.ledger.restores.transition(
            current.restore_id, FAILED, at=now, attributes=attributes, allowed_from=allowed_from, owed=owed
        )
        if item is None:
            return self._late(current.restore_id)
        self.owing.settle(item)
        return Outcome(item.restore_id, "failed", str(item.stage), error, drill=item.drill)

    def _late(self, restore_id: str) -> Outcome:
        """A report the request's state does not accept: a duplicate (which completes what the first
        delivery still owes), or one about an unknown restore."""
        item = self.context.ledger.restores.get(restore_id)
        if item is None:
            log.warning("restore outcome for unknown restore %s ignored", restore_id)
            return Outcome(restore_id, "ignored", detail="unknown restore id")
        self.owing.settle(item)
        return Outcome(restore_id, "duplicate", detail=f"already {item.state}")


def report_differences(item: RestoreItem, event: RestoreStarted, sender: str | None) -> list[str]:
    """What in an agent's report contradicts the job stored at dispatch (empty: it may count). ``sender``
    is the agent the event's source names (None: not an agent's source)."""
    if not item.job:
        return [f"no job was dispatched for restore {item.restore_id} (it is {item.state})"]
    job = Job.model_validate_json(item.job)
    differences = []
    if sender != job.agent:
        source = agent_event_source(sender) if sender else "a source that is no agent's"
        differences.append(f"sent from {source}, the job went to agent {job.agent}")
    if event.agent != sender:
        differences.append(f"agent {event.agent!r} declared, but sent by {sender!r}")
    expected = {
        "job_id": job.job_id,
        "source_target": job.source.target if job.source else None,
        "source_run_id": job.source.run_id if job.source else None,
        "destination": job.destination,
        "mode": job.mode,
    }
    for name, value in expected.items():
        reported = getattr(event, name)
        if reported != value:
            differences.append(f"{name} {reported!r}, the job's is {value!r}")
    return differences


def _ran(event: RestoreSucceeded | RestoreFailed) -> dict[str, Any]:
    """What every end report records: which agent ran the restore, and when."""
    return {"agent": event.agent, "started_at": event.started_at, "finished_at": event.finished_at}
