"""The watchdog's ledger access, through ``backup_functions.ledger`` — a few queries and conditional
writes, never a scan.

Per tick: ``WATCH_SHARDS`` index queries + 1 query of the INCIDENTS partition (+ their pages), one
BatchGetItem per 100 targets whose state must be read (only targets with an overdue job or an open
incident; none at all when only RPO watches are overdue), and one write per incident opened,
reminded or resolved and per superseded job watch cleared. Nothing grows with the healthy fleet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from backup_functions.ledger import Claim, Incident, JobRow, Ledger, TargetState, WatchedItem
from backup_functions.ledger.outbox import Owed


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
        self, subject: str, kind: str, opened_at: datetime, attributes: dict[str, Any], owed: dict[str, Owed]
    ) -> Claim | None:
        """The claim of the first alert (owed) when this call opened the incident; None when it was open."""
        _, claim = self._ledger.incidents.open(subject, kind, opened_at=opened_at, owed=owed, **attributes)
        return claim

    def claim_notification(self, incident: Incident, now: datetime, owed: dict[str, Owed]) -> Claim | None:
        return self._ledger.incidents.claim_notification(incident, now, owed)

    def resolve_incident(self, incident: Incident, owed: dict[str, Owed], now: datetime) -> bool:
        return self._ledger.incidents.resolve(incident, owed, at=now)

    def settle(self, incident: Incident, name: str, entry: Owed, *, last: bool) -> bool:
        return self._ledger.incidents.settle(incident, name, entry, last=last)

    def clear_watch(self, row: JobRow, *, now: datetime, reason: str) -> bool:
        return self._ledger.jobs.clear_superseded_watch(row, now=now, reason=reason)
