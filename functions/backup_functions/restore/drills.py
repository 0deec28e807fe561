"""Restore drills (the tick): each target with a ``drill`` in the fleet restores its latest good
backup into its drill destination once per slot of the drill's schedule.

A slot is claimed on the target's state (``last_drill_slot``) before its drill is created, so two
ticks never start the same drill and a missed tick starts only the latest slot. The claim owes the drill
(``owed.drill`` on the target state, the ledger's outbox) until it was created and dispatched: a tick that
fails in between leaves it owed, and the next tick starts it — as of the claimed time — or completes
what the created drill still owes. A drill that cannot
start (no good backup, the object missing or changed) is failed at once and alerts; otherwise its job
is dispatched to the destination agent like a restore, and the agent's report records the outcome and
the measured RTO on the source target's state (see ``agent_reports``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from backup_contracts.fleet import Target
from backup_contracts.schedule import Schedule, ScheduleError
from backup_functions.ledger import TargetState
from backup_functions.ledger.outbox import Owed
from backup_functions.ledger.restores import REQUESTED, fingerprint
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
            if state is not None and "drill" in state.due(now):
                self._resume(target, state, report)
            if state is not None and state.last_drill_slot is not None and state.last_drill_slot >= slot:
                continue
            restore_id = f"drill-{name}-{slot:%Y%m%dT%H%M%SZ}"
            owed = Owed(
                id=f"drill:{restore_id}", kind="drill", owed_at=now, by="tick", payload={"restore_id": restore_id}
            )
            if not self.context.ledger.targets.claim_drill_slot(name, slot, restore_id, now, owed=owed):
                continue  # another tick claimed it
            self._started(target, restore_id, owed, now, report)

    def _started(self, target: Target, restore_id: str, owed: Owed, at: datetime, report: TickReport) -> None:
        outcome = self.start(target, restore_id, at)
        if outcome.action == "duplicate":  # created by an earlier attempt: complete what it still owes
            self.decisions.owing.settle(self.context.ledger.restores.get(restore_id))
        else:
            (report.drills_dispatched if outcome.action == "dispatched" else report.drills_failed).append(restore_id)
        self.context.ledger.targets.settle_drill(target.name, owed)

    def _resume(self, target: Target, state: TargetState, report: TickReport) -> None:
        """A drill an earlier tick claimed but could not start or dispatch: start it as of its claim."""
        owed = state.owed["drill"]
        log.warning(
            "drill %s of %s was claimed but not started; starting it now", owed.payload["restore_id"], target.name
        )
        self._started(target, str(owed.payload["restore_id"]), owed, owed.owed_at, report)

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
            existing = restores.get(restore_id)
            if existing is None or existing.state != REQUESTED:
                return Outcome(restore_id, "duplicate", detail="drill already created")
            # created by a tick that failed before deciding it: decide it now
        try:
            plan = self.planner.drill_plan(target, target.drill.destination)
        except Rejection as rejection:
            error = f"{rejection.code}: {rejection.reason}"
            current = restores.get(restore_id)
            if current is None:
                return Outcome(restore_id, "duplicate", detail="drill vanished")
            attributes = {"stage": "validate", "error": error, "destination_touched": False}
            return self.agent_reports.fail(current, now, error, attributes=attributes, finished_at=now, by="tick")
        facts = {"source": plan.source, "source_run_id": plan.source["run_id"], "agent": plan.destination_agent.name}
        return self.decisions.dispatch(restore_id, plan, facts, now, allowed_from=(REQUESTED,), by="tick")
