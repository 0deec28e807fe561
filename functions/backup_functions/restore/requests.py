"""A ``Restore Requested``, from its arrival to its decision.

The request is stored first, in state ``requested`` (once per restore_id, with a fingerprint of its
content and, when it came through the approvals URL, the requester's principal ARN as AWS authenticated
it), then planned and decided: rejected, validated (a dry run), left awaiting an approval, or
dispatched. A request whose restore_id is already stored is either a redelivery, which completes
what a crash left owing (the decision itself, or what it owes: its announcement, the job's send), or a reuse of
the id for other content, which is refused without touching the original request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from backup_contracts import ledger as keys
from backup_contracts.events import RestoreRequested
from backup_contracts.formatting import one_line
from backup_contracts.validation import describe_validation_error
from backup_functions.envelope import MalformedEventError
from backup_functions.ledger import RestoreItem
from backup_functions.ledger.restores import REQUESTED, fingerprint
from backup_functions.restore.approvals import Approvals
from backup_functions.restore.context import Context, Outcome
from backup_functions.restore.decisions import Decisions
from backup_functions.restore.planning import Planner, Rejection


class Requests:
    """Stores each Restore Requested once and takes its decision."""

    def __init__(self, context: Context, planner: Planner, decisions: Decisions, approvals: Approvals) -> None:
        self.context = context
        self.planner = planner
        self.decisions = decisions
        self.approvals = approvals

    def receive(self, detail: Any, *, requester_arn: str | None = None) -> Outcome:
        """Store the request once and decide it, or resume it when its restore_id is already stored.

        ``requester_arn``: who sent it, as AWS authenticated the caller of the approvals URL; None for a
        request from the bus, whose sender nobody knows."""
        now = self.context.clock.now()
        restore_id = restore_id_of(detail)
        if restore_id is None:
            raise MalformedEventError("Restore Requested without a usable restore_id (1-128 of A-Z a-z 0-9 . _ : -)")
        raw = detail if isinstance(detail, dict) else {}
        try:
            request = RestoreRequested.model_validate(detail)
        except ValidationError as exc:
            request = None
            invalid = describe_validation_error(exc)
        summary = {  # of an invalid request, only what is text, flattened and cut (it is stored and announced)
            "kind": "restore",
            "target": request.target if request else _text(raw.get("target"), 128) or "",
            "destination": (request.destination or request.target) if request else _text(raw.get("destination"), 128),
            "mode": request.mode if request else _text(raw.get("mode"), 16),
            "selector": request.backup.model_dump(mode="json", exclude_none=True) if request else None,
            "requested_by": request.requested_by if request else _text(raw.get("requested_by"), 256) or "unknown",
            "reason": request.reason if request else _text(raw.get("reason"), 1024) or "",
            "dry_run": request.dry_run if request else raw.get("dry_run") is True,
        }
        if requester_arn is not None:
            summary["requested_by_arn"] = requester_arn
        summary["fingerprint"] = fingerprint({**raw, **({"requested_by_arn": requester_arn} if requester_arn else {})})
        created = self.context.ledger.restores.create(
            restore_id, summary, at=now, expires_at=now + self.context.config.ledger_ttl
        )
        if not created:
            return self._resume(restore_id, summary, now)
        if request is None:
            return self.decisions.reject(restore_id, "invalid-request", invalid, now=now)
        return self._decide(restore_id, request, now, requester_arn)

    def _decide(self, restore_id: str, request: RestoreRequested, now: datetime, requester_arn: str | None) -> Outcome:
        try:
            plan = self.planner.plan(request, authenticated=requester_arn is not None)
        except Rejection as rejection:
            return self.decisions.reject(restore_id, rejection.code, rejection.reason, now=now)
        facts = {
            "source": plan.source,
            "source_run_id": plan.source["run_id"],
            "agent": plan.destination_agent.name,
            "requires_approval": plan.requires_approval,
        }
        if request.dry_run:
            return self.decisions.validated(restore_id, request, plan, facts, now)
        if plan.requires_approval:
            return self.approvals.await_approval(restore_id, facts, now)
        return self.decisions.dispatch(restore_id, plan, facts, now, allowed_from=(REQUESTED,))

    def _resume(self, restore_id: str, summary: Mapping[str, Any], now: datetime) -> Outcome:
        """A request whose restore_id exists: a duplicate delivery (finish what a crash left) or a reuse."""
        item = self.context.ledger.restores.get(restore_id)
        if item is None:  # expired between the two calls
            return Outcome(restore_id, "duplicate", detail="request vanished")
        if item.fingerprint != summary["fingerprint"]:
            requested_at = keys.iso(item.requested_at) if item.requested_at else "?"
            reason = (
                f"restore_id {restore_id} was already used by a request of {item.requested_by} at"
                f" {requested_at} (state {item.state}); this request was ignored"
            )
            self.decisions.announce_rejection(
                restore_id,
                target=summary["target"],
                code="restore-id-reused",
                reason=reason,
                requested_by=summary["requested_by"],
                now=now,
            )
            return Outcome(restore_id, "rejected", "restore-id-reused", reason)
        state = item.state
        if state == REQUESTED:  # a crash before the decision: decide now
            try:
                request = RestoreRequested.model_validate(_request_fields(item))
            except ValidationError as exc:
                return self.decisions.reject(restore_id, "invalid-request", describe_validation_error(exc), now=now)
            return self._decide(restore_id, request, now, item.requested_by_arn)
        self.decisions.owing.settle(item)  # what the decision owes and a crash or a failed call left
        return Outcome(restore_id, "duplicate", detail=f"already {state}")


def _text(value: Any, limit: int) -> str | None:
    """A field of a request as one line of at most ``limit`` characters; None when it is no text at all."""
    return one_line(value, limit) if isinstance(value, str) else None


def restore_id_of(detail: Any) -> str | None:
    """The detail's restore_id if it can key the ledger (1-128 ASCII letters, digits, ``. _ : -``)."""
    if not isinstance(detail, dict):
        return None
    value = detail.get("restore_id")
    if isinstance(value, str) and 1 <= len(value) <= 128 and all(c.isalnum() or c in "._:-" for c in value):
        return value if value.isascii() else None
    return None


def _request_fields(item: RestoreItem) -> dict[str, Any]:
    """Rebuild the RestoreRequested from the stored request (for a decision resumed after a crash)."""
    return {
        "restore_id": item.restore_id,
        "target": item.target,
        "backup": item.selector or {"latest": True},
        "destination": None if item.mode == "in-place" else item.destination,
        "mode": item.mode,
        "requested_by": item.requested_by,
        "reason": item.reason,
        "dry_run": item.dry_run,
    }
