"""Approvals of restores that would overwrite a protected target.

Who asks and who approves is proven by AWS, never typed: both the request and the approval of a restore
into a protected target arrive through the approvals URL (the restore function's URL, ``AuthType
AWS_IAM``), and the coordinator takes each caller's principal ARN from the request context
(``api.py``). Such a request waits in ``awaiting-approval`` with a deadline (past it, the tick rejects
it) and a notice through SNS that says what waits, who asked and who may approve — it carries no secret,
so it is the same notice whenever it is (re)sent.

An approval dispatches the very plan that was announced, its object checked again, when it comes from a
principal the fleet lists as an approver of the destination (``Fleet.approvers_of``) who is not the
requester, before the deadline. An approval by the requester (``self-approval``) or by a principal the
fleet does not list (``not-an-approver``) is refused and announced, and the request goes on waiting for a
real approver; so is a ``Restore Approved`` put on the bus, whose sender nobody can know
(``approval-not-authenticated``). A late approval by an approver rejects the request.

The notice is owed in the same write that makes the request wait (the ledger's outbox): a notice whose
publish failed is sent by the redelivery or the next tick, and it is the stored notice, never a new one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.approvers import allowed
from backup_contracts.events import RestoreApproved
from backup_functions.ledger import RestoreItem
from backup_functions.ledger.items import WATCH_APPROVAL
from backup_functions.ledger.restores import AWAITING_APPROVAL, DISPATCHED, FAILED, RUNNING, SUCCEEDED
from backup_functions.restore import messages
from backup_functions.restore.context import Context, Outcome
from backup_functions.restore.decisions import Decisions
from backup_functions.restore.planning import Planner, Rejection

# Refusals of an approval that leave the request waiting (an answer to the caller, not a decision).
REFUSED_APPROVALS = frozenset({"self-approval", "not-an-approver", "approval-not-authenticated"})


class Approvals:
    """Asks for approvals, and dispatches or refuses what an authenticated approval approves."""

    def __init__(self, context: Context, planner: Planner, decisions: Decisions) -> None:
        self.context = context
        self.planner = planner
        self.decisions = decisions

    def await_approval(self, restore_id: str, facts: dict[str, Any], now: datetime) -> Outcome:
        """Wait for an approval: store the deadline the tick watches, then announce what waits."""
        deadline = now + self.context.config.approval_timeout
        current = self.context.ledger.restores.get(restore_id)
        if current is None:
            return Outcome(restore_id, "duplicate", detail="request vanished")
        waiting = current.model_copy(update={**facts, "approval_deadline": deadline, "state": AWAITING_APPROVAL})
        notice = messages.approval_needed(
            self.context.config.pipeline, item=waiting, approvers=self._approvers(waiting), expires_at=deadline, now=now
        )
        item = self.context.ledger.restores.transition(
            restore_id,
            AWAITING_APPROVAL,
            at=now,
            attributes={**facts, "approval_deadline": deadline},
            watch_until=(WATCH_APPROVAL, deadline),
            owed={"alert": self.decisions.owing.alert(restore_id, AWAITING_APPROVAL, notice, now)},
        )
        if item is None:
            return Outcome(restore_id, "duplicate", detail="already decided")
        self.decisions.owing.settle(item)
        approvers = ", ".join(self._approvers(item))
        return Outcome(
            restore_id,
            "awaiting-approval",
            detail=f"waits for an approval by one of {approvers} (not the requester); expires {keys.iso(deadline)}",
        )

    def _approvers(self, item: RestoreItem) -> tuple[str, ...]:
        try:
            _, destination = self.context.fleet.target(str(item.destination))
        except KeyError:
            return ()
        return self.context.fleet.approvers_of(destination)

    def approve(self, restore_id: str, approver_arn: str) -> Outcome:
        """Dispatch the announced plan if ``approver_arn`` (authenticated by AWS) may approve it now."""
        now = self.context.clock.now()
        item = self.context.ledger.restores.get(restore_id)
        if item is None:
            return self.reject_approval(restore_id, "not-awaiting-approval", f"no restore request {restore_id} exists")
        state = item.state
        if state != AWAITING_APPROVAL:
            if state in (DISPATCHED, RUNNING, SUCCEEDED, FAILED):
                self.decisions.owing.settle(item)  # a retried approval completes what the first one owed
                return Outcome(restore_id, "duplicate", detail=f"already {state}")
            return self.reject_approval(
                restore_id,
                "not-awaiting-approval",
                f"restore {restore_id} is {state}, not awaiting approval",
                item=item,
            )
        deadline = item.approval_deadline
        assert deadline is not None  # noqa: S101 - set with the awaiting-approval state
        if item.requested_by_arn is None:  # stored before requests were authenticated
            return self.decisions.reject(
                restore_id,
                "authenticated-request-required",
                f"restore {restore_id} was requested on the bus, so nobody knows who asked; submit it again",
                now=now,
                item=item,
            )
        waits = f"the request still waits for another approver until {keys.iso(deadline)}"
        if approver_arn == item.requested_by_arn:
            return self.reject_approval(
                restore_id,
                "self-approval",
                f"{approver_arn} requested restore {restore_id} and cannot approve it too; {waits}",
                item=item,
            )
        approvers = self._approvers(item)
        if not allowed(approvers, approver_arn):
            return self.reject_approval(
                restore_id,
                "not-an-approver",
                f"{approver_arn} is not an approver of {item.destination} (approvers: {', '.join(approvers)}); {waits}",
                item=item,
            )
        if now > deadline:
            return self.decisions.reject(
                restore_id,
                "approval-expired",
                f"the approval by {approver_arn} arrived at {keys.iso(now)}, after the deadline {keys.iso(deadline)}",
                now=now,
                item=item,
            )
        try:
            plan = self.planner.approved_plan(item)
        except Rejection as rejection:
            return self.decisions.reject(restore_id, rejection.code, rejection.reason, now=now, item=item)
        facts = {"approved_by": approver_arn, "approved_at": now, "source": plan.source}
        return self.decisions.dispatch(restore_id, plan, facts, now, allowed_from=(AWAITING_APPROVAL,))

    def unauthenticated(self, event: RestoreApproved) -> Outcome:
        """A Restore Approved put on the bus: anyone may put one, so it approves nothing; the answer says
        how to approve."""
        return self.reject_approval(
            event.restore_id,
            "approval-not-authenticated",
            f"a Restore Approved on the bus (approved_by {event.approved_by!r}, a name anyone can type) approves"
            f" nothing; an approver runs `backupctl approve {event.restore_id}`, which AWS authenticates",
            item=self.context.ledger.restores.get(event.restore_id),
        )

    def reject_approval(self, restore_id: str, code: str, reason: str, item: RestoreItem | None = None) -> Outcome:
        """Answer an approval that approves nothing (no such request, not waiting, refused, malformed) with
        a rejection; the request, if there is one, stays as it is."""
        now = self.context.clock.now()
        self.decisions.announce_rejection(
            restore_id,
            target=item.target if item else "",
            code=code,
            reason=reason,
            requested_by=item.requested_by if item else "unknown",
            now=now,
        )
        return Outcome(restore_id, "rejected", code, reason)
