"""Approvals of restores that would overwrite a protected target.

Such a request waits in ``awaiting-approval``: a one-time token is announced through SNS with what it
approves, and only the token's hash is stored, with a deadline (past it, the tick rejects the
request). A ``Restore Approved`` that carries the token before the deadline dispatches the very plan
that was announced, its object checked again; the dispatch's transition consumes the token. A wrong or
late token rejects the request; an approval for a request that is not waiting is answered with a
rejection and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.events import RestoreApproved
from backup_functions.ledger import RestoreItem
from backup_functions.ledger.items import WATCH_APPROVAL
from backup_functions.ledger.restores import AWAITING_APPROVAL, DISPATCHED, FAILED, RUNNING, SUCCEEDED
from backup_functions.restore import messages
from backup_functions.restore.context import Context, Outcome
from backup_functions.restore.decisions import Decisions
from backup_functions.restore.planning import Planner, Rejection

TOKEN_BYTES = 24  # 32 URL-safe characters


def hash_token(token: str) -> str:
    """What is stored of an approval token: its SHA-256 (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Approvals:
    """Asks for approvals, and dispatches or rejects what a Restore Approved approves."""

    def __init__(self, context: Context, planner: Planner, decisions: Decisions) -> None:
        self.context = context
        self.planner = planner
        self.decisions = decisions

    def await_approval(self, restore_id: str, facts: dict[str, Any], now: datetime) -> Outcome:
        """Wait for an approval: store the token's hash and the deadline the tick watches, then
        announce the token."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        deadline = now + self.context.config.approval_timeout
        item = self.context.ledger.restores.transition(
            restore_id,
            AWAITING_APPROVAL,
            at=now,
            attributes={**facts, "approval_token_hash": hash_token(token), "approval_deadline": deadline},
            watch_until=(WATCH_APPROVAL, deadline),
        )
        if item is None:
            return Outcome(restore_id, "duplicate", detail="already decided")
        self._announce(item, token, deadline, now)
        return Outcome(restore_id, "awaiting-approval", detail=f"token announced; expires {keys.iso(deadline)}")

    def reannounce(self, item: RestoreItem, now: datetime) -> None:
        """Re-announce after a crash between the state change and the SNS message: a fresh token
        replaces the unannounced one (the deadline stays)."""
        assert item.approval_deadline is not None  # noqa: S101 - set with the awaiting-approval state
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self.context.ledger.restores.mark(item.restore_id, approval_token_hash=hash_token(token))
        self._announce(item, token, item.approval_deadline, now)

    def _announce(self, item: RestoreItem, token: str, deadline: datetime, now: datetime) -> None:
        """The token goes to people through SNS, never to the ledger; the request is marked announced."""
        self.context.notifier.notify(
            messages.approval_needed(
                self.context.config.pipeline,
                item=item,
                token=token,
                expires_at=deadline,
                bus_name=self.context.config.bus_name,
                now=now,
            )
        )
        self.context.ledger.restores.mark(item.restore_id, notified_at=now)

    def approved(self, event: RestoreApproved) -> Outcome:
        """Dispatch the announced plan if the event carries the announced token in time."""
        now = self.context.clock.now()
        item = self.context.ledger.restores.get(event.restore_id)
        if item is None:
            return self.reject_approval(
                event.restore_id, "not-awaiting-approval", f"no restore request {event.restore_id} exists"
            )
        state = item.state
        if state != AWAITING_APPROVAL:
            if state in (DISPATCHED, RUNNING, SUCCEEDED, FAILED):
                return Outcome(event.restore_id, "duplicate", detail=f"already {state}")
            return self.reject_approval(
                event.restore_id,
                "not-awaiting-approval",
                f"restore {event.restore_id} is {state}, not awaiting approval",
                item=item,
            )
        deadline = item.approval_deadline
        assert deadline is not None  # noqa: S101 - set with the awaiting-approval state
        if now > deadline:
            return self.decisions.reject(
                event.restore_id,
                "approval-expired",
                f"the approval by {event.approved_by} arrived at {keys.iso(now)},"
                f" after the deadline {keys.iso(deadline)}",
                now=now,
            )
        expected = item.approval_token_hash or ""
        if not hmac.compare_digest(expected, hash_token(event.approval_token)):
            return self.decisions.reject(
                event.restore_id,
                "approval-invalid",
                f"the approval token sent by {event.approved_by} does not match the one announced",
                now=now,
            )
        try:
            plan = self.planner.approved_plan(item)
        except Rejection as rejection:
            return self.decisions.reject(event.restore_id, rejection.code, rejection.reason, now=now)
        facts = {"approved_by": event.approved_by, "approved_at": now}
        # the token is single-use: the conditional transition consumes it (hash removed)
        return self.decisions.dispatch(
            event.restore_id, plan, {**facts, "source": plan.source}, now, allowed_from=(AWAITING_APPROVAL,)
        )

    def reject_approval(self, restore_id: str, code: str, reason: str, item: RestoreItem | None = None) -> Outcome:
        """Answer an approval that approves nothing (no such request, not waiting, malformed) with a
        rejection; the request, if there is one, stays as it is."""
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
