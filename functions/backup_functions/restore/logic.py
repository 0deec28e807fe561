"""The restore coordinator: validate a request, pick the backup, guard, dispatch, track to the end.

Inputs (each handled idempotently; see ``Coordinator.handle``):

- ``Restore Requested`` (people, CLI): validated; every rejection is answered with a
  ``Restore Rejected`` event AND an SNS message that says why (``messages.REASON_HELP``). A dry run
  stops after validation with a ``Restore Validated`` event. A restore that would overwrite a
  protected target waits for an approval: a one-time token is announced through SNS (only its hash
  is stored). Otherwise a ``Job(kind="restore")`` goes to the destination agent's queue with a
  presigned GET URL for exactly that object version.
- ``Restore Approved``: the token's hash must match and arrive before the deadline; then the object
  is checked again and the job dispatched; a wrong or late token rejects the request.
- ``Restore Started/Succeeded/Failed`` (agent): the request's state follows; failures alert; drills
  record their outcome and duration (measured RTO) on the source target's state.
- the scheduled tick (``Coordinator.tick``): dispatches due drills, rejects requests whose approval
  expired, and fails restores whose agent never reported an end by the deadline.

State (ledger ``RESTORE#<id>/STATE``): requested → (awaiting-approval) → dispatched → running →
succeeded | failed, or rejected / validated; each step timestamped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any, Generic, TypeVar, cast, overload

from pydantic import ValidationError

from backup_contracts.events import (
    Contract,
    RestoreApproved,
    RestoreFailed,
    RestoreRequested,
    RestoreStarted,
    RestoreSucceeded,
    UnknownEventError,
    parse_event,
)
from backup_contracts.fleet import Fleet
from backup_contracts.naming import SOURCE_REQUESTS
from backup_contracts.validation import describe_validation_error
from backup_functions.clock import Clock
from backup_functions.envelope import MalformedEventError, unwrap
from backup_functions.restore import store as st
from backup_functions.restore.agent_reports import AgentReports
from backup_functions.restore.approvals import Approvals
from backup_functions.restore.context import (
    Context,
    CoordinatorConfig,
    Outcome,
    TickReport,
)
from backup_functions.restore.decisions import Decisions
from backup_functions.restore.drills import Drills
from backup_functions.restore.planning import Planner, Rejection
from backup_functions.restore.ports import EventPublisher, JobQueue, Notifier, ObjectStore
from backup_functions.restore.store import RestoreStore
from backup_functions.restore.watches import Watches

log = logging.getLogger(__name__)

T = TypeVar("T")


def parse_envelope(body: str | Mapping[str, Any]) -> tuple[str, str, Any]:
    """(source, detail-type, detail) of an EventBridge event given as JSON text or a dict."""
    return unwrap(body)


class _InContext(Generic[T]):
    """An attribute of the coordinator kept in its ``Context``: replacing it on the coordinator (tests
    replace a port) replaces it for every part."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, coordinator: None, owner: type[Any]) -> _InContext[T]: ...
    @overload
    def __get__(self, coordinator: Coordinator, owner: type[Any]) -> T: ...
    def __get__(self, coordinator: Coordinator | None, owner: type[Any]) -> T | _InContext[T]:
        if coordinator is None:
            return self
        return cast(T, getattr(coordinator.context, self.name))

    def __set__(self, coordinator: Coordinator, value: T) -> None:
        setattr(coordinator.context, self.name, value)


class Coordinator:
    fleet = _InContext[Fleet]()
    store = _InContext[RestoreStore]()
    objects = _InContext[ObjectStore]()
    jobs = _InContext[JobQueue]()
    events = _InContext[EventPublisher]()
    notifier = _InContext[Notifier]()
    config = _InContext[CoordinatorConfig]()
    clock = _InContext[Clock]()

    def __init__(
        self,
        fleet: Fleet,
        store: RestoreStore,
        *,
        objects: ObjectStore,
        jobs: JobQueue,
        events: EventPublisher,
        notifier: Notifier,
        config: CoordinatorConfig,
        clock: Clock,
    ) -> None:
        self.context = Context(fleet, store, objects, jobs, events, notifier, config, clock)
        self._planner = Planner(self.context)
        self._decisions = Decisions(self.context)
        self._approvals = Approvals(self.context, self._planner, self._decisions)
        self._agent_reports = AgentReports(self.context)
        self._watches = Watches(self.context, self._decisions, self._agent_reports)
        self._drills = Drills(self.context, self._planner, self._decisions, self._agent_reports)

    # ================================================================== entry points
    def handle(self, body: str | Mapping[str, Any]) -> Outcome:
        """One EventBridge event (an SQS record's body)."""
        source, detail_type, detail = parse_envelope(body)
        if detail_type == "Scheduled Event" and source == "aws.events":  # a schedule routed through the queue
            report = self.tick()
            return Outcome(None, "tick", detail=json.dumps(asdict(report)))
        if detail_type == "Restore Requested" and source == SOURCE_REQUESTS:
            return self.requested(detail)
        try:
            event = parse_event(source, detail_type, detail)
        except UnknownEventError as exc:
            raise MalformedEventError(str(exc)) from None
        except ValidationError as exc:
            if isinstance(event_id := _restore_id_of(detail), str) and detail_type == "Restore Approved":
                return self._approvals.reject_approval(event_id, "invalid-request", describe_validation_error(exc))
            raise MalformedEventError(
                f"{detail_type!r} detail does not match the contract: {describe_validation_error(exc)}"
            ) from None
        if isinstance(event, RestoreApproved):
            return self._approvals.approved(event)
        if isinstance(event, RestoreSucceeded):
            return self._agent_reports.succeeded(event)
        if isinstance(event, RestoreFailed):
            return self._agent_reports.failed(event)
        if isinstance(event, RestoreStarted):
            return self._agent_reports.started(event)
        raise MalformedEventError(f"the restore coordinator does not handle {detail_type!r} from {source!r}")

    # ================================================================== requests
    def requested(self, detail: Any) -> Outcome:
        now = self.clock.now()
        restore_id = _restore_id_of(detail)
        if restore_id is None:
            raise MalformedEventError("Restore Requested without a usable restore_id (1-128 of A-Z a-z 0-9 . _ : -)")
        raw = detail if isinstance(detail, dict) else {}
        try:
            request = RestoreRequested.model_validate(detail)
        except ValidationError as exc:
            request = None
            invalid = describe_validation_error(exc)
        summary = {
            "kind": "restore",
            "target": str(raw.get("target", ""))[:128],
            "destination": (request.destination or request.target) if request else raw.get("destination"),
            "mode": request.mode if request else raw.get("mode"),
            "selector": request.backup.model_dump(mode="json", exclude_none=True) if request else None,
            "requested_by": str(raw.get("requested_by", "unknown"))[:256],
            "reason": str(raw.get("reason", ""))[:1024],
            "dry_run": bool(request.dry_run) if request else bool(raw.get("dry_run", False)),
        }
        summary["fingerprint"] = st.fingerprint({**raw})
        created = self.store.create(restore_id, summary, at=now, expires_at=now + self.config.ledger_ttl)
        if not created:
            return self._resume(restore_id, summary, now)
        if request is None:
            return self._decisions.reject(restore_id, "invalid-request", invalid, now=now)
        return self._decide(restore_id, request, now)

    def _decide(self, restore_id: str, request: RestoreRequested, now: datetime) -> Outcome:
        try:
            plan = self._planner.plan(request)
        except Rejection as rejection:
            return self._decisions.reject(restore_id, rejection.code, rejection.reason, now=now)
        facts = {
            "source": plan.source,
            "source_run_id": plan.source["run_id"],
            "agent": plan.destination_agent.name,
            "requires_approval": plan.requires_approval,
        }
        if request.dry_run:
            return self._decisions.validated(restore_id, request, plan, facts, now)
        if plan.requires_approval:
            return self._approvals.await_approval(restore_id, facts, now)
        return self._decisions.dispatch(restore_id, plan, facts, now, allowed_from=(st.REQUESTED,))

    def _resume(self, restore_id: str, summary: Mapping[str, Any], now: datetime) -> Outcome:
        """A request whose restore_id exists: a duplicate delivery (finish what a crash left) or a reuse."""
        item = self.store.get(restore_id)
        if item is None:  # expired between the two calls
            return Outcome(restore_id, "duplicate", detail="request vanished")
        if item.get("fingerprint") != summary["fingerprint"]:
            reason = (
                f"restore_id {restore_id} was already used by a request of {item.get('requested_by')} at"
                f" {item.get('requested_at')} (state {item.get('state')}); this request was ignored"
            )
            self._decisions.announce_rejection(
                restore_id,
                target=summary["target"],
                code="restore-id-reused",
                reason=reason,
                requested_by=summary["requested_by"],
                now=now,
            )
            return Outcome(restore_id, "rejected", "restore-id-reused", reason)
        state = item.get("state")
        if state == st.REQUESTED:  # a crash before the decision: decide now
            try:
                request = RestoreRequested.model_validate(_request_fields(item))
            except ValidationError as exc:
                return self._decisions.reject(restore_id, "invalid-request", describe_validation_error(exc), now=now)
            return self._decide(restore_id, request, now)
        if state == st.REJECTED and not item.get("notified_at"):
            self._decisions.notify_rejection(item, now)
        elif state == st.DISPATCHED and not item.get("job_sent_at"):
            self._decisions.send_job(item, now)
        elif state == st.AWAITING_APPROVAL and not item.get("notified_at"):
            self._approvals.reannounce(item, now)
        return Outcome(restore_id, "duplicate", detail=f"already {state}")

    # ------------------------------------------------------------------ outcomes of a request

    # ------------------------------------------------------------------ dispatch

    # ================================================================== approvals

    # ================================================================== the agent's events

    # ================================================================== the scheduled tick
    def tick(self) -> TickReport:
        """The scheduled tick: end what waited too long, then start the drills that are due."""
        now = self.context.clock.now()
        report = TickReport()
        self._watches.expire(now, report)
        self._drills.start_due(now, report)
        return report


# --------------------------------------------------------------------------- helpers


def _restore_id_of(detail: Any) -> str | None:
    if not isinstance(detail, dict):
        return None
    value = detail.get("restore_id")
    if isinstance(value, str) and 1 <= len(value) <= 128 and all(c.isalnum() or c in "._:-" for c in value):
        return value if value.isascii() else None
    return None


def _request_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the RestoreRequested from the stored request (for a resumed decision or an approval)."""
    mode = item.get("mode")
    return {
        "restore_id": item["restore_id"],
        "target": item.get("target"),
        "backup": item.get("selector") or {"latest": True},
        "destination": None if mode == "in-place" else item.get("destination"),
        "mode": mode,
        "requested_by": item.get("requested_by"),
        "reason": item.get("reason"),
        "dry_run": bool(item.get("dry_run", False)),
    }


__all__ = ["Contract", "Coordinator", "CoordinatorConfig", "MalformedEventError", "Outcome", "TickReport"]
