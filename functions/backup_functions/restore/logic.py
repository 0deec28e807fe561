"""The restore coordinator: validate a request, pick the backup, guard, dispatch, track to the end.

``Coordinator`` is the one entry point (``handle`` for an event, ``tick`` for the schedule); its
parts share one ``context.Context`` and each decides one thing.

Inputs (each handled idempotently; see ``Coordinator.handle``):

- ``Restore Requested`` (``requests``, ``planning``, ``decisions``): from the bus (``handle``; the CLI
  without an approvals URL, ``aws events put-events``), or through the approvals URL (``request``, with
  the caller's principal ARN as AWS authenticated it; see ``api``). Validated; every rejection is
  answered with a ``Restore Rejected`` event AND an SNS message that says why
  (``messages.REASON_HELP``). A dry run stops after validation with a ``Restore Validated`` event. A
  restore that would overwrite a protected target must come through the approvals URL (from the bus it
  is rejected, saying how to submit it) and waits for an approval, announced through SNS. Otherwise a
  ``Job(kind="restore")`` goes to the destination agent's queue with a presigned GET URL for exactly
  that object version; a PITR target's job also carries the WAL to replay (``pitr``, ``wal_index``).
- approvals (``approvals``), only through the approvals URL (``approve``): an approver the fleet lists,
  not the requester, before the deadline; then the object is checked again and the job dispatched. A
  ``Restore Approved`` on the bus approves nothing and is answered so.
- ``Restore Started/Succeeded/Failed`` (agent; ``agent_reports``): counted only from the job's agent
  (the event's source) and when they match the stored job field by field, else ``ignored``; the
  request's state follows; failures alert; drills record their outcome and duration (measured RTO) on
  the source target's state.
- the scheduled tick (``Coordinator.tick``; ``watches``, ``drills``): rejects requests whose approval
  expired, fails restores whose agent never reported an end by the deadline, and dispatches due
  drills.

State (ledger ``RESTORE#<id>/STATE``, transitions in ``ledger.restores.ALLOWED_FROM``): requested →
(awaiting-approval) → dispatched → running → succeeded | failed, or rejected / validated; each step
timestamped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from backup_contracts.events import (
    RestoreApproved,
    RestoreFailed,
    RestoreStarted,
    RestoreSucceeded,
    UnknownEventError,
    parse_event,
)
from backup_contracts.fleet import Fleet
from backup_contracts.naming import SOURCE_REQUESTS, sender_agent
from backup_contracts.validation import describe_validation_error
from backup_functions.clock import Clock
from backup_functions.envelope import MalformedEventError, unwrap
from backup_functions.ledger import Ledger
from backup_functions.ports import EventPublisher, JobQueue, Notifier, ObjectStore
from backup_functions.restore.agent_reports import AgentReports
from backup_functions.restore.approvals import Approvals
from backup_functions.restore.context import Context, CoordinatorConfig, Outcome, TickReport
from backup_functions.restore.decisions import Decisions
from backup_functions.restore.drills import Drills
from backup_functions.restore.planning import Planner
from backup_functions.restore.requests import Requests, restore_id_of
from backup_functions.restore.wal_index import IndexObjects
from backup_functions.restore.watches import Watches


class Coordinator:
    """Routes each event and the tick to the part that decides it; the parts share ``context``."""

    def __init__(
        self,
        fleet: Fleet,
        ledger: Ledger,
        *,
        objects: ObjectStore,
        jobs: JobQueue,
        events: EventPublisher,
        notifier: Notifier,
        config: CoordinatorConfig,
        clock: Clock,
        indexes: IndexObjects | None = None,
    ) -> None:
        self.context = Context(fleet, ledger, objects, jobs, events, notifier, config, clock, indexes)
        self._planner = Planner(self.context)
        self._decisions = Decisions(self.context)
        self._approvals = Approvals(self.context, self._planner, self._decisions)
        self._requests = Requests(self.context, self._planner, self._decisions, self._approvals)
        self._agent_reports = AgentReports(self.context)
        self._watches = Watches(self.context, self._decisions, self._agent_reports)
        self._drills = Drills(self.context, self._planner, self._decisions, self._agent_reports)

    def handle(self, body: str | Mapping[str, Any]) -> Outcome:
        """One EventBridge event (an SQS record's body)."""
        source, detail_type, detail = unwrap(body)
        if detail_type == "Scheduled Event" and source == "aws.events":  # a schedule routed through the queue
            report = self.tick()
            return Outcome(None, "tick", detail=json.dumps(asdict(report)))
        if detail_type == "Restore Requested" and source == SOURCE_REQUESTS:
            return self._requests.receive(detail)
        try:
            event = parse_event(source, detail_type, detail)
        except UnknownEventError as exc:
            raise MalformedEventError(str(exc)) from None
        except ValidationError as exc:
            if isinstance(event_id := restore_id_of(detail), str) and detail_type == "Restore Approved":
                return self._approvals.reject_approval(event_id, "invalid-request", describe_validation_error(exc))
            raise MalformedEventError(
                f"{detail_type!r} detail does not match the contract: {describe_validation_error(exc)}"
            ) from None
        if isinstance(event, RestoreApproved):
            return self._approvals.unauthenticated(event)
        sender = sender_agent(source)  # the agent whose role alone may put this source (never the detail's word)
        if isinstance(event, RestoreSucceeded):
            return self._agent_reports.succeeded(event, sender)
        if isinstance(event, RestoreFailed):
            return self._agent_reports.failed(event, sender)
        if isinstance(event, RestoreStarted):
            return self._agent_reports.started(event, sender)
        raise MalformedEventError(f"the restore coordinator does not handle {detail_type!r} from {source!r}")

    def request(self, detail: Any, requester_arn: str) -> Outcome:
        """A Restore Requested through the approvals URL: ``requester_arn`` is the caller AWS authenticated."""
        return self._requests.receive(detail, requester_arn=requester_arn)

    def approve(self, restore_id: str, approver_arn: str) -> Outcome:
        """An approval through the approvals URL: ``approver_arn`` is the caller AWS authenticated."""
        return self._approvals.approve(restore_id, approver_arn)

    def tick(self) -> TickReport:
        """The scheduled tick: end what waited too long, then start the drills that are due."""
        now = self.context.clock.now()
        report = TickReport()
        self._watches.expire(now, report)
        self._drills.start_due(now, report)
        return report


__all__ = ["Coordinator", "CoordinatorConfig", "MalformedEventError", "Outcome", "TickReport"]
