"""Silences at a watchdog tick: which incident a silence holds, and what happens when one ends.

An incident about to page (opened, reminded, or re-paged by a cause's recovery) is held instead when a
silence in force matches it (``backup_contracts.silences.matches``): it is recorded with ``silenced_by``
(shown by ``backupctl status``), and nothing is sent. When a silence ends — it expired, or was lifted —
its watch falls due: the tick pages each incident it still held once (the notice names the silence), unless
another silence holds it, then clears the watch. An incident that resolves while held and was never paged
closes silently; one paged before the silence sends its "resolved" as usual (good news is not held).

The silences in force are read with one Query, only on a tick that has something to page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from backup_contracts.formatting import format_time
from backup_functions import alerts
from backup_functions.ledger import Incident, SilenceItem
from backup_functions.ledger.silences import holding
from backup_functions.watchdog.causes import FleetView
from backup_functions.watchdog.model import WATCH_INCIDENT_KINDS

WATCHDOG_KINDS = WATCH_INCIDENT_KINDS | alerts.CAUSE_KINDS  # the incidents the watchdog opens and closes


class SilenceBook:
    """The silences in force at one tick (read once, when first asked)."""

    def __init__(self, read: Callable[[datetime], list[SilenceItem]], fleet: FleetView | None, now: datetime) -> None:
        self._read = read
        self._fleet = fleet
        self._now = now
        self._in_force: list[SilenceItem] | None = None

    def in_force(self) -> list[SilenceItem]:
        if self._in_force is None:
            self._in_force = self._read(self._now)
        return self._in_force

    def holding(self, kind: str, target: str | None, agent: str | None) -> SilenceItem | None:
        """The silence (the one ending last) that holds an incident of ``kind`` about ``target``/``agent``."""
        if target is None and agent is None:
            return None  # the pipeline's own: nothing to read
        if target is not None and self._fleet is not None:
            agent = self._fleet.agent_of.get(target, agent)
        return holding(self.in_force(), kind=kind, target=target, agent=agent)

    def holding_incident(self, incident: Incident) -> SilenceItem | None:
        return self.holding(incident.kind, incident.about_target, incident.about_agent)


def ended_note(silence: SilenceItem) -> dict[str, str]:
    """What a page after a silence says about it (``alerts.Situation.extra``)."""
    how = f"lifted by {silence.lifted_by}" if silence.lifted_at and silence.lifted_by else "expired"
    return {
        "note": f"Was held by {silence.describe()}; it ended {format_time(silence.ends_at)} ({how}).",
        "silence_ended": silence.silence_id,
    }


def never_paged_while_held(incident: Incident) -> bool:
    """Recorded but never paged, because a cause explained it or a silence held it."""
    return incident.last_notified_at is None and (incident.suppressed_by or incident.silenced_by) is not None
