"""Restore drills (the tick): each target with a ``drill`` in the fleet restores its latest good
backup into its drill destination once per slot of the drill's schedule.

A slot is claimed on the target's state (``last_drill_slot``) before its drill is created, so two
ticks never start the same drill and a missed tick starts only the latest slot. A drill that cannot
start (no good backup, the object missing or changed) is failed at once and alerts; otherwise its job
is dispatched to the destination agent like a restore, and the agent's report records the outcome and
the measured RTO on the source target's state (see ``agent_reports``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from backup_contracts.fleet import Target
from backup_contracts.schedule import Schedule, ScheduleError
from backup_functions.ledger.restores import FAILED, REQUESTED, fingerprint
from backup_functions.restore.agent_reports import AgentReports
from backup_functions.restore.context import Context, Outcome, TickReport
from backup_functions.restore.decisions import Decisions
from backup_functions.restore.planning import Planner, Rejection

log = logging.getLogger(__name__)


class Drills:
    """Starts the drills that are due."""

    def __init__(self, context: Context, planner: Planner, decisions: Decisions, agent_reports: AgentReports) -> None:
        self.context = context
        self.planner = planner
        self.decisions = decisions
        self.agent_reports = agent_reports

    def start_due(self, now: datetime, report: TickReport) -> None:
        wanted: dict[str, tuple[Target, datetime]] = {}
        for _agent, target in self.context.fleet.targets():
            if target.drill is None:
                continue
            try:
                slot = Schedule(target.drill.schedule, target.timezone).latest_slot_at_or_before(now)
            except ScheduleError as exc:
                log.error("drill schedule of %s is invalid: %s", target.name, exc)
                continue
            if slot is not None:
                wanted[target.name] = (target, slot)
        if not wanted:
            return
        states = self.context.ledger.targets.get_many(wanted)
        for name, (target, slot) in wanted.items():
            state = states.get(name)
            if state is not None and state.last_drill_slot is not None and state.last_drill_slot >= slot:
                continue
            restore_id = f"drill-{name}-{slot:%Y%m%dT%H%M%SZ}"
            if not self.context.ledger.targets.claim_drill_slot(name, slot, restore_id, now):
                continue  # another tick claimed it
            outcome = self.start(target, restore_id, now)
            (report.drills_dispatched if outcome.action == "dispatched" else report.drills_failed).append(restore_id)

    def start(self, target: Target, restore_id: str, now: datetime) -> Outcome:
        """Restore the latest good backup of ``target`` into its drill destination."""
        assert target.drill is not None  # noqa: S101
        summary = {
            "kind": "drill",
            "target": target.name,
            "destination": target.drill.destination,
            "mode": "drill",
            "selector": {"latest": True},
            "requested_by": "restore-drill schedule",
            "reason": f"scheduled restore drill ({target.drill.schedule})",
            "dry_run": False,
            "fingerprint": fingerprint({"drill": restore_id}),
        }
        restores = self.context.ledger.restores
        if not restores.create(restore_id, summary, at=now, expires_at=now + self.context.config.ledger_ttl):
            return Outcome(restore_id, "duplicate", detail="drill already created")
        try:
            plan = self.planner.drill_plan(target, target.drill.destination)
        except Rejection as rejection:
            error = f"{rejection.code}: {rejection.reason}"
            item = restores.transition(
                restore_id,
                FAILED,
                at=now,
                attributes={"stage": "validate", "error": error, "destination_touched": False},
            )
            if item is not None:
                return self.agent_reports.settle_failure(item, now, error, finished_at=now)
            return Outcome(restore_id, "duplicate")
        facts = {"source": plan.source, "source_run_id": plan.source["run_id"], "agent": plan.destination_agent.name}
        return self.decisions.dispatch(restore_id, plan, facts, now, allowed_from=(REQUESTED,))
