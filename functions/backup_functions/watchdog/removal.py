"""Decommissioning: targets and agents no longer in the fleet file (the source of truth) stop paging.

At each tick the watchdog

- closes the open incidents of a removed subject with ONE final "removed from the fleet" notice per
  removal: one per removed agent (listing its targets and every incident closed), one per removed target
  of an agent that stays;
- stops watching them: an overdue watch of a removed target (its RPO, its jobs) or agent (its heartbeat)
  is cleared instead of alerted (conditional on the watch being unchanged), so nothing pages about them
  again. Their backups are not touched: they stay in the bucket under their retention.

A removal of several incidents is made of single writes that a failure may interrupt, so it is ordered to
send one notice whatever fails: the *carrier* (the incident that will owe the notice) first records the
whole list (``removed_targets``, ``closed``) in its details; then the others are deleted silently; then the
carrier is resolved owing the notice (the outbox). A tick after a failure finds the carrier by its list and
completes the same notice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from backup_functions import alerts
from backup_functions.ledger import AgentState, Incident, WatchedItem, agent_subject, target_subject
from backup_functions.watchdog.causes import FleetView

REMOVED = "removed from the fleet"


def removed_unit(incident: Incident, fleet: FleetView) -> str | None:
    """The subject whose removal closes ``incident`` (``agent:<a>`` or ``target:<t>``), None if it stays."""
    if incident.subject.startswith("pipeline:"):
        return None
    target, agent = incident.about_target, incident.about_agent
    if target is None:
        return agent_subject(agent) if agent and not fleet.has_agent(agent) else None
    if fleet.has_target(target):
        return None
    return agent_subject(agent) if agent and not fleet.has_agent(agent) else target_subject(target)


def is_removed(item: WatchedItem, fleet: FleetView) -> bool:
    """A watched item about a target or agent the fleet no longer has."""
    if isinstance(item, AgentState):
        return not fleet.has_agent(item.name)
    return not fleet.has_target(item.name)


@dataclass(frozen=True)
class Removal:
    unit: str
    carrier: Incident
    others: tuple[Incident, ...]
    targets: tuple[str, ...]
    closed: tuple[str, ...]

    @property
    def recorded(self) -> bool:
        """The carrier already holds the list (an earlier tick began this removal)."""
        return self.carrier.details.get("removed_targets") is not None

    def details(self) -> dict[str, Any]:
        return {**self.carrier.details, "removed_targets": list(self.targets), "closed": list(self.closed)}

    def extra(self) -> dict[str, Any]:
        who = (
            f"agent {self.unit.removeprefix('agent:')}"
            if self.unit.startswith("agent:")
            else self.unit.removeprefix("target:")
        )
        return {"who": who, "removed_targets": list(self.targets), "closed": list(self.closed)}


def _carrier(unit: str, group: list[Incident]) -> Incident:
    recorded = [i for i in group if i.details.get("removed_targets") is not None]
    if recorded:
        return recorded[0]
    own = [i for i in group if i.subject == unit and i.kind == alerts.AGENT_SILENT]
    return own[0] if own else group[0]


def removals(incidents: Iterable[Incident], fleet: FleetView) -> list[Removal]:
    """The open incidents of removed subjects, one ``Removal`` per removed agent or target."""
    groups: dict[str, list[Incident]] = {}
    for incident in incidents:
        unit = removed_unit(incident, fleet)
        if unit is not None:
            groups.setdefault(unit, []).append(incident)
    found = []
    for unit, group in sorted(groups.items()):
        group.sort(key=lambda i: i.sk)
        carrier = _carrier(unit, group)
        stored_targets = carrier.details.get("removed_targets") or ()
        stored_closed = carrier.details.get("closed") or ()
        targets = set(stored_targets) | {t for i in group if (t := i.about_target)}
        if unit.startswith("target:"):
            targets.add(unit.removeprefix("target:"))
        found.append(
            Removal(
                unit=unit,
                carrier=carrier,
                others=tuple(i for i in group if i.sk != carrier.sk),
                targets=tuple(sorted(targets)),
                closed=tuple(sorted(set(stored_closed) | {i.sk for i in group})),
            )
        )
    return found
