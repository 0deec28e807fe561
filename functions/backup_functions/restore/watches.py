"""Overdue watches (the tick): a request whose approval did not arrive by its deadline is rejected,
and a restore whose agent reported no end by the job deadline plus ``RESTORE_END_GRACE`` is failed
(``destination_touched`` when the agent had reported its start).

A watch is the ledger's sparse index on a waiting request (``watch_kind`` approval or restore); a
request that moved on since the index was read is left alone by the conditional transition. A request
that still owes a side effect (``watch_kind`` outbox) has it performed here, once it is due
(``ledger/outbox.py``): read again first, since the index may lag behind a redelivery that settled it.
"""

from __future__ import annotations

from datetime import datetime

from backup_contracts import ledger as keys
from backup_functions.ledger.items import WATCH_APPROVAL, WATCH_OUTBOX, WATCH_RESTORE
from backup_functions.ledger.restores import AWAITING_APPROVAL, DISPATCHED, RUNNING
from backup_functions.restore.agent_reports import AgentReports
from backup_functions.restore.context import Context, TickReport
from backup_functions.restore.decisions import Decisions


class Watches:
    """Ends what waited too long: expired approvals, restores whose agent went silent."""

    def __init__(self, context: Context, decisions: Decisions, agent_reports: AgentReports) -> None:
        self.context = context
        self.decisions = decisions
        self.agent_reports = agent_reports

    def expire(self, now: datetime, report: TickReport) -> None:
        for item in self.context.ledger.restores.due(now):
            restore_id = item.restore_id
            if item.watch_kind == WATCH_OUTBOX:
                if item.due(now):
                    self.decisions.owing.settle(self.context.ledger.restores.get(restore_id), now=now)
            elif item.watch_kind == WATCH_APPROVAL and item.state == AWAITING_APPROVAL:
                outcome = self.decisions.reject(
                    restore_id,
                    "approval-expired",
                    f"no approval arrived before {_text(item.approval_deadline)}",
                    now=now,
                    item=item,
                    by="tick",
                )
                if outcome.action == "rejected":
                    report.approvals_expired.append(restore_id)
            elif item.watch_kind == WATCH_RESTORE and item.state in (DISPATCHED, RUNNING):
                error = f"the agent {item.agent} reported no end by {_text(item.deadline)} (state {item.state})"
                outcome = self.agent_reports.fail(
                    item,
                    now,
                    error,
                    attributes={"stage": "deadline", "error": error, "destination_touched": item.state == RUNNING},
                    finished_at=now,
                    allowed_from=(DISPATCHED, RUNNING),
                    by="tick",
                )
                if outcome.action == "failed":
                    report.restores_timed_out.append(restore_id)


def _text(moment: datetime | None) -> str:
    """A stored time as the ledger keeps it (how people saw it in earlier messages)."""
    return keys.iso(moment) if moment is not None else "?"
