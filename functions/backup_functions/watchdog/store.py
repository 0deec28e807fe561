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

from backup_functions import ledger as ledger_access
from backup_functions.ledger import Ledger


class WatchdogStore:
    """Adapter from the watchdog's port (``logic.WatchdogLedger``) to the shared ``Ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def overdue_items(self, now: datetime) -> list[dict[str, Any]]:
        return self._ledger.due_watches(now)

    def open_incidents(self) -> list[dict[str, Any]]:
        return self._ledger.list_incidents()

    def target_states(self, targets: Iterable[str]) -> dict[str, dict[str, Any]]:
        names = sorted(set(targets))
        return self._ledger.get_target_states(names) if names else {}

    def open_incident(self, subject: str, kind: str, opened_at: datetime, attributes: dict[str, Any]) -> bool:
        return ledger_access.open_incident_notified(
            self._ledger, subject, kind, opened_at=opened_at, attributes=attributes
        )

    def claim_notification(self, sk: str, previous: str | None, now: datetime) -> bool:
        return ledger_access.claim_incident_notification(self._ledger, sk, previous, now)

    def release_notification(self, sk: str, claimed: datetime, previous: str | None) -> None:
        ledger_access.release_incident_notification(self._ledger, sk, claimed, previous)

    def resolve_incident(self, sk: str, opened_at: str | None) -> bool:
        return ledger_access.resolve_incident_opened_at(self._ledger, sk, opened_at)

    def clear_watch(self, pk: str, sk: str, *, watch_kind: str, deadline: str, now: datetime, reason: str) -> bool:
        return ledger_access.clear_superseded_watch(
            self._ledger, pk, sk, watch_kind=watch_kind, deadline=deadline, now=now, reason=reason
        )
