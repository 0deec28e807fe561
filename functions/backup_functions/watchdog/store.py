"""The watchdog's ledger access, through ``backup_functions.ledger`` — a few queries and conditional
writes, never a scan.

Per tick: ``WATCH_SHARDS`` index queries + 1 query of the INCIDENTS partition (+ their pages) + 1 GetItem
of the dispatcher's tick marker, one BatchGetItem per 100 targets whose state must be read (only targets
with an overdue job or an open incident; none at all when only RPO watches are overdue), one BatchGetItem
of the agents with a job that did not start (did they ever heartbeat?), one of a cause's targets when it
notifies, one Query of the silences in force when anything would page, and one write per incident
opened, reminded, resolved or held and per watch cleared (superseded, of a target or agent removed from
the fleet, of a silence that ended). Nothing grows with the healthy fleet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from backup_contracts import ledger as keys
from backup_functions.ledger import (
    AgentState,
    Claim,
    Incident,
    JobRow,
    Ledger,
    SilenceItem,
    TargetState,
    WatchedItem,
)
from backup_functions.ledger.client import WATCH_ATTRIBUTES, Update
from backup_functions.ledger.outbox import Owed

WATCHDOG_PK = "WATCHDOG"  # WATCHDOG/STATE: when the watchdog first ticked


class WatchdogStore:
    """Adapter from the watchdog's port (``logic.WatchdogLedger``) to the shared ``Ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def overdue_items(self, now: datetime) -> list[WatchedItem]:
        return self._ledger.due_watches(now)

    def open_incidents(self) -> list[Incident]:
        return self._ledger.incidents.list_open()

    def target_states(self, targets: Iterable[str]) -> dict[str, TargetState]:
        names = set(targets)
        return self._ledger.targets.get_many(names) if names else {}

    def open_incident(
        self,
        subject: str,
        kind: str,
        opened_at: datetime,
        attributes: dict[str, Any],
        owed: dict[str, Owed],
        *,
        notify: bool = True,
    ) -> Claim | None:
        """The claim of the first alert (owed) when this call opened the incident; None when it was open."""
        _, claim = self._ledger.incidents.open(
            subject, kind, opened_at=opened_at, owed=owed, notify=notify, **attributes
        )
        return claim

    def claim_notification(self, incident: Incident, now: datetime, owed: dict[str, Owed]) -> Claim | None:
        return self._ledger.incidents.claim_notification(incident, now, owed)

    def resolve_incident(self, incident: Incident, owed: dict[str, Owed], now: datetime) -> bool:
        return self._ledger.incidents.resolve(incident, owed, at=now)

    def settle(self, incident: Incident, name: str, entry: Owed, *, last: bool) -> bool:
        return self._ledger.incidents.settle(incident, name, entry, last=last)

    def clear_watch(self, row: JobRow, *, now: datetime, reason: str) -> bool:
        return self._ledger.jobs.clear_superseded_watch(row, now=now, reason=reason)

    def agent_states(self, agents: Iterable[str]) -> dict[str, AgentState]:
        names = set(agents)
        return self._ledger.agents.get_many(names) if names else {}

    def last_dispatch(self) -> datetime | None:
        """When the dispatcher last completed a tick (None before its first)."""
        marker = self._ledger.jobs.marker()
        return marker.last_tick_at if marker else None

    def watching_since(self, now: datetime) -> datetime:
        """When the watchdog first ticked (that tick records it): asked only while the dispatcher has never
        completed a tick, so a dispatcher that never runs after a deploy is noticed."""
        for _ in range(2):
            item = self._ledger.client.get(WATCHDOG_PK, keys.STATE_SK)
            if item is not None:
                return keys.parse_iso(str(item["first_tick_at"]))
            if self._ledger.client.put_if_absent(
                {keys.PK: WATCHDOG_PK, keys.SK: keys.STATE_SK, "type": "watchdog", "first_tick_at": keys.iso(now)}
            ):
                return now
        raise RuntimeError("the watchdog's first-tick marker could not be read or written")

    def update_details(self, incident: Incident, details: dict[str, Any]) -> bool:
        return self._ledger.incidents.update_details(incident, details)

    def silences_in_force(self, now: datetime) -> list[SilenceItem]:
        return self._ledger.silences.in_force(now)

    def hold(self, incident: Incident, silence_id: str) -> bool:
        """Record that ``silence_id`` holds the open incident's pages (shown by ``backupctl status``)."""
        update = Update().set(silenced_by=silence_id)
        return self._ledger.client.update(keys.INCIDENTS_PK, incident.sk, update, update.exists()) is not None

    def end_silence(self, silence: SilenceItem, now: datetime) -> bool:
        return self._ledger.silences.end(silence, now)

    def clear_item_watch(self, item: WatchedItem, *, now: datetime, reason: str) -> bool:
        """Stop watching ``item`` (only if its watch is unchanged since it was read)."""
        update = Update().set(watch_cleared_at=now, watch_cleared_reason=reason).remove(*WATCH_ATTRIBUTES)
        deadline = keys.iso(item.watch_deadline) if item.watch_deadline else ""
        condition = (
            f"{update.equals(keys.WATCH_KIND, item.watch_kind or '')}"
            f" AND {update.equals(keys.WATCH_DEADLINE, deadline)}"
        )
        return self._ledger.client.update(item.pk, item.sk, update, condition) is not None
