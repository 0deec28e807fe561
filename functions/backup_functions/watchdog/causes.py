"""One incident per root cause: which overdue items an agent or the pipeline explains.

A *cause* is an incident about an agent (``agent:<a>``) or the pipeline (``pipeline:<name>``):

- ``heartbeat``: the agent's heartbeat is overdue, or it never sent one and one of its jobs did not start
  (an agent is watched from its first dispatched job, before any heartbeat);
- ``jobs``: the agent heartbeats, but jobs of two or more of its targets never started;
- ``agents``: most agents of the fleet (more than half, at least 3 in the fleet) are silent at once;
- ``dispatcher``: the dispatcher has not completed a tick for ``DISPATCH_STALL_TICKS`` of its intervals
  (or never did, while the watchdog has been ticking that long);
- ``vault``: the off-site copies of ``VAULT_CAUSE_MIN_TARGETS`` or more targets are late at once: the
  replication rule, its role or the vault is broken, not each target (it explains their ``offsite``
  incidents).

The per-target incidents a cause explains (rpo, start, end of its agent's targets; rpo of every target for
the dispatcher) and the agent causes the ``agents`` cause explains are *suppressed*: opened on the ledger
with ``suppressed_by`` (``backupctl status`` shows them), never paged, never reminded, resolved without a
message. What a cause explains can grow while it lasts (a target's RPO passes, another agent falls silent):
its stored targets and agents grow with it (one UpdateItem then). When the cause resolves, its recovery
message says which targets caught up and which are still behind; those page on their own from that tick on.

A cause's reminders back off: the n-th comes ``reminder_interval * 2**(n-1)`` after the previous one
(1 h, 2 h, 4 h, 8 h with the default hour), so a day-long outage pages at most 5 times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.fleet import Fleet
from backup_functions import alerts
from backup_functions.ledger import AgentState, Incident, TargetState, agent_subject
from backup_functions.watchdog.model import TARGET_INCIDENT_KINDS, OverdueItem

DISPATCH_STALL_TICKS = 3
MOST_AGENTS_MIN_FLEET = 3
JOBS_CAUSE_MIN_TARGETS = 2
VAULT_CAUSE_MIN_TARGETS = 2
MAX_STATES_READ = 100  # target states read for one cause's notice (one BatchGetItem)


def pipeline_subject(pipeline: str) -> str:
    return f"pipeline:{pipeline}"


@dataclass(frozen=True)
class FleetView:
    """What the watchdog needs of the fleet file (the source of truth): who runs what."""

    pipeline: str
    agent_of: Mapping[str, str]
    targets_of: Mapping[str, tuple[str, ...]]
    dispatch_interval: timedelta

    @classmethod
    def of(cls, fleet: Fleet) -> FleetView:
        return cls(
            pipeline=fleet.pipeline.name,
            agent_of={target.name: agent.name for agent, target in fleet.targets()},
            targets_of={agent.name: tuple(t.name for t in agent.targets) for agent in fleet.agents},
            dispatch_interval=timedelta(minutes=fleet.pipeline.dispatcher_interval_minutes),
        )

    def has_target(self, name: str) -> bool:
        return name in self.agent_of

    def has_agent(self, name: str) -> bool:
        return name in self.targets_of

    def agent_for(self, item: OverdueItem) -> str | None:
        return self.agent_of.get(item.target or "") or item.agent


@dataclass(frozen=True)
class Cause:
    subject: str
    kind: str
    since: datetime
    agent: str | None
    targets: tuple[str, ...]
    agents: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def sk(self) -> str:
        return keys.incident_sk(self.subject, self.kind)


@dataclass
class Correlation:
    causes: dict[str, Cause] = field(default_factory=dict)
    explained: dict[str, str] = field(default_factory=dict)  # incident sk -> the sk of the cause explaining it


def agents_to_read(overdue: Mapping[str, OverdueItem], fleet: FleetView) -> set[str]:
    """Agents whose state says whether they ever heartbeated: those with a job that did not start and
    no overdue heartbeat (read only then)."""
    silent = {i.name for i in overdue.values() if i.incident_kind == alerts.AGENT_SILENT}
    starting = {fleet.agent_for(i) for i in overdue.values() if i.incident_kind == alerts.NOT_STARTED}
    return {a for a in starting if a is not None} - silent


def correlate(
    overdue: Mapping[str, OverdueItem],
    fleet: FleetView,
    *,
    heartbeats: Mapping[str, AgentState],
    last_dispatch: datetime | None,
    now: datetime,
    watching_since: datetime | None = None,
) -> Correlation:
    found = Correlation()
    by_agent: dict[str, list[OverdueItem]] = {}
    for item in overdue.values():
        agent = fleet.agent_for(item)
        if agent is not None:
            by_agent.setdefault(agent, []).append(item)

    for agent, items in sorted(by_agent.items()):
        targets = fleet.targets_of.get(agent, ())
        silent = [i for i in items if i.incident_kind == alerts.AGENT_SILENT]
        unstarted = sorted((i for i in items if i.incident_kind == alerts.NOT_STARTED), key=lambda i: i.deadline)
        state = heartbeats.get(agent)
        never = state is None or state.last_heartbeat_at is None
        cause = None
        if silent:
            cause = Cause(agent_subject(agent), alerts.AGENT_SILENT, silent[0].deadline, agent, targets)
        elif unstarted and never:
            facts = {"never_heartbeat": True}
            cause = Cause(agent_subject(agent), alerts.AGENT_SILENT, unstarted[0].deadline, agent, targets, facts=facts)
        elif len({i.target for i in unstarted}) >= JOBS_CAUSE_MIN_TARGETS:
            cause = Cause(agent_subject(agent), alerts.AGENT_JOBS, unstarted[0].deadline, agent, targets)
        if cause is None:
            continue
        found.causes[cause.sk] = cause
        for item in items:
            if item.incident_kind in TARGET_INCIDENT_KINDS:
                found.explained[item.incident_sk] = cause.sk

    silent_agents = [c for c in found.causes.values() if c.kind == alerts.AGENT_SILENT]
    if len(fleet.targets_of) >= MOST_AGENTS_MIN_FLEET and 2 * len(silent_agents) > len(fleet.targets_of):
        names = tuple(sorted(c.agent for c in silent_agents if c.agent))
        targets = tuple(sorted(t for c in silent_agents for t in c.targets))
        since = min(c.since for c in silent_agents)
        pipeline = Cause(pipeline_subject(fleet.pipeline), alerts.PIPELINE_AGENTS, since, None, targets, names)
        for sk in list(found.explained):
            found.explained[sk] = pipeline.sk
        for cause in silent_agents:
            found.explained[cause.sk] = pipeline.sk
        found.causes[pipeline.sk] = pipeline

    allowed = DISPATCH_STALL_TICKS * fleet.dispatch_interval
    # A dispatcher that never completed a tick leaves nothing to watch at all (no job, no RPO watch): it
    # is stalled once the watchdog itself has been ticking for as long as a running one may pause.
    stalled_since = last_dispatch if last_dispatch is not None else watching_since
    if stalled_since is not None and stalled_since + allowed < now:
        missing = sorted((i for i in overdue.values() if i.incident_kind == alerts.RPO), key=lambda i: i.name)
        stall: dict[str, Any] = (
            {"last_tick_at": keys.iso(stalled_since)} if last_dispatch else {"note": never_ran(stalled_since)}
        )
        stalled = Cause(
            pipeline_subject(fleet.pipeline),
            alerts.DISPATCHER,
            stalled_since + fleet.dispatch_interval,
            None,
            tuple(sorted(i.name for i in missing)),
            facts=stall,
        )
        for item in missing:
            found.explained.setdefault(item.incident_sk, stalled.sk)
        found.causes[stalled.sk] = stalled
    _vault_cause(overdue, fleet, found)
    return found


def _vault_cause(overdue: Mapping[str, OverdueItem], fleet: FleetView, found: Correlation) -> None:
    late = sorted((i for i in overdue.values() if i.incident_kind == alerts.OFFSITE), key=lambda i: i.deadline)
    targets = tuple(sorted({i.name for i in late}))
    if len(targets) < VAULT_CAUSE_MIN_TARGETS:
        return
    vault = Cause(pipeline_subject(fleet.pipeline), alerts.VAULT, late[0].deadline, None, targets)
    for item in late:
        found.explained.setdefault(item.incident_sk, vault.sk)
    found.causes[vault.sk] = vault


def never_ran(watching_since: datetime) -> str:
    return (
        "the dispatcher has never completed a tick, so no target is watched yet (the watchdog has been"
        f" ticking since {keys.iso(watching_since)}): check its schedule and its errors"
    )


def reminder_due(incident: Incident, now: datetime, interval: timedelta) -> bool:
    """A cause's reminders back off (interval, then twice it, four times, ...)."""
    if incident.last_notified_at is None:
        return True
    return incident.last_notified_at + interval * 2 ** max(incident.notify_count - 1, 0) <= now


def affected_rows(targets: Iterable[str], states: Mapping[str, TargetState]) -> list[dict[str, Any]]:
    """Each affected target with what its RPO countdown needs (as text: it is stored and sent)."""
    rows = []
    for target in sorted(targets):
        state = states.get(target)
        deadline = state.rpo_deadline if state else None
        good = state.last_good_at if state else None
        row = {"target": target}  # no None inside: the ledger drops it, and a re-sent alert must not change
        if deadline:
            row["rpo_deadline"] = deadline.isoformat()
        if good:
            row["last_good_at"] = good.isoformat()
        rows.append(row)
    return rows


def stored_facts(cause: Cause) -> dict[str, Any]:
    """What the cause's incident records (its details): who it affects, and why."""
    return {**cause.facts, "targets": list(cause.targets), "agents": list(cause.agents)}


def grown_facts(stored: Mapping[str, Any], cause: Cause) -> dict[str, Any] | None:
    """The stored facts with the targets and agents the cause explains now and did not when it opened
    (a dispatcher's targets whose RPO passed later, an agent that fell silent later), or None when nothing
    is new. Kept so that the recovery lists a target it held that caught up before the cause ended."""
    fresh = stored_facts(cause)
    grown = {}
    for name in ("targets", "agents"):
        known = list(stored.get(name) or ())
        new = [value for value in fresh[name] if value not in known]
        if new:
            grown[name] = known + new
    return {**stored, **grown} if grown else None


def recovery(incident: Incident, held: Iterable[Incident], overdue: Mapping[str, OverdueItem]) -> dict[str, Any]:
    """The recovery message's facts: of the targets the cause affected (and those it held), which caught up
    and which are still behind (an item of theirs still overdue)."""
    targets = set(incident.details.get("targets") or ()) | {t for i in held if (t := i.about_target)}
    kinds = {alerts.OFFSITE} if incident.kind == alerts.VAULT else TARGET_INCIDENT_KINDS
    behind = {i.target for i in overdue.values() if i.target and i.incident_kind in kinds}
    return {
        "caught_up": sorted(targets - behind),
        "still_behind": sorted(targets & behind),
        "agents": list(incident.details.get("agents") or ()),
    }


def presentation(kind: str, subject: str, details: Mapping[str, Any]) -> dict[str, Any]:
    """The Situation.extra of a cause's notice."""
    extra: dict[str, Any] = {}
    if subject.startswith("pipeline:"):
        extra["who"] = f"pipeline {subject.removeprefix('pipeline:')}"
    for name in ("never_heartbeat", "last_tick_at", "agents", "note"):
        if details.get(name):
            extra[name] = details[name]
    return extra
