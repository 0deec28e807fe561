"""Overdue watches (the tick): a request whose approval did not arrive by its deadline is rejected,
and a restore whose agent reported no end by the job deadline plus ``RESTORE_END_GRACE`` is failed
(``destination_touched`` when the agent had reported its start).

A watch is the ledger's sparse index on a waiting request (``watch_kind`` approval or restore); a
request that moved on since the index was read is left alone by the conditional transition.
"""

from __future__ import annotations

from datetime import datetime

from backup_contracts import ledger as keys
from backup_functions.restore import store as st
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
        for item in self.context.store.due_watches(now):
            restore_id = str(item.get("restore_id", ""))
            if not restore_id or item.get("type") != "restore":
                continue
            if item.get(keys.WATCH_KIND) == st.WATCH_APPROVAL and item.get("state") == st.AWAITING_APPROVAL:
                outcome = self.decisions.reject(
                    restore_id,
                    "approval-expired",
                    f"no approval arrived before {item.get('approval_deadline')}",
                    now=now,
                )
                if outcome.action == "rejected":
                    report.approvals_expired.append(restore_id)
            elif item.get(keys.WATCH_KIND) == st.WATCH_RESTORE and item.get("state") in (st.DISPATCHED, st.RUNNING):
                error = (
                    f"the agent {item.get('agent')} reported no end by {item.get('deadline')}"
                    f" (state {item.get('state')})"
                )
                failed = self.context.store.transition(
                    restore_id,
                    st.FAILED,
                    at=now,
                    attributes={
                        "stage": "deadline",
                        "error": error,
                        "destination_touched": item.get("state") == st.RUNNING,
                    },
                    allowed_from=(st.DISPATCHED, st.RUNNING),
                )
                if failed is not None:
                    self.agent_reports.settle_failure(failed, now, error, finished_at=now)
                    report.restores_timed_out.append(restore_id)
