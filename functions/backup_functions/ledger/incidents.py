"""Incidents (``INCIDENTS/<subject>#<kind>``): the one protocol by which the audit and the watchdog
page a person exactly once per incident.

1. ``open`` creates the incident with a conditional put and, in the same write, claims its first
   notification for the caller: only the call that created it gets a ``Claim`` and sends the alert.
2. ``claim_notification`` claims a later one (a reminder): a conditional update that moves
   ``last_notified_at`` from the value the caller read to now, so of two concurrent callers exactly one wins.
3. ``resolve`` marks the incident resolved if it is still the one opened at the time the caller read, so
   exactly one caller sends the "resolved" message and a newer incident of the same kind survives.

Each notification is owed in the write that claims it (``owed``: the exact alert, and the watchdog's
``Backup Missing`` event; ``ledger/outbox.py``): the open, a reminder's claim, and a resolve that marks the
incident ``resolved_at`` instead of deleting it. The sender performs and ``settle``\\ s each entry (the
last entry of a resolved incident deletes it); what a failed call left owed is sent by the redelivery or
the next watchdog tick, as stored.

Open incidents form one small partition: one Query lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backup_contracts import ledger as keys
from backup_functions.ledger.client import LedgerClient, Update
from backup_functions.ledger.items import Incident, stored
from backup_functions.ledger.outbox import Outbox, Owed, owe
from backup_functions.ledger.outbox import stored as stored_owed


@dataclass(frozen=True)
class Claim:
    """The right to send one notification of an incident, claimed at ``at``."""

    sk: str
    at: datetime


class Incidents:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client
        self._outbox = Outbox(client)

    def list_open(self) -> list[Incident]:
        return [Incident.model_validate(item) for item in self._client.query(keys.INCIDENTS_PK)]

    def get(self, subject: str, kind: str) -> Incident | None:
        return Incident.parse(self._client.get(keys.INCIDENTS_PK, keys.incident_sk(subject, kind)))

    def open(
        self,
        subject: str,
        kind: str,
        *,
        opened_at: datetime,
        claimed_at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
        owed: Mapping[str, Owed] | None = None,
        notify: bool = True,
        **attributes: Any,
    ) -> tuple[Incident, Claim | None]:
        """Open the incident once. Returns it, and the claim of its first notification when THIS call
        created it (the caller must then notify, and ``release`` the claim if it cannot). With
        ``notify=False`` (a suppressed incident: recorded, not paged) nothing is claimed: its first
        notification is claimed later by ``claim_notification``, if it ever pages."""
        claimed = claimed_at or opened_at
        sk = keys.incident_sk(subject, kind)
        item = {
            **attributes,
            keys.PK: keys.INCIDENTS_PK,
            keys.SK: sk,
            "type": "incident",
            "subject": subject,
            "kind": kind,
            "opened_at": opened_at,
            "details": dict(details or {}),
            "last_notified_at": claimed,
            "notify_count": 1,
        }
        if not notify:
            del item["last_notified_at"]
            item["notify_count"] = 0
        if owed:
            item["owed"] = stored_owed(owed)
        for _ in range(3):  # an incident resolved between the put and the read is opened again
            if self._client.put_if_absent(item):
                opened = Incident.model_validate({**item, "opened_at": keys.iso(opened_at), "owed": dict(owed or {})})
                return opened, Claim(sk, claimed)
            existing = self.get(subject, kind)
            if existing is not None:
                return existing, None
        raise RuntimeError(f"incident {sk} keeps being opened and resolved concurrently")

    def claim_notification(
        self, incident: Incident, now: datetime, owed: Mapping[str, Owed] | None = None
    ) -> Claim | None:
        """Move ``last_notified_at`` from what ``incident`` says to ``now``, once (owing ``owed`` in the same
        write); None when another won. A suppressed or silenced incident that pages stops being held."""
        update = Update().set(last_notified_at=now).add("notify_count", 1)
        held = [name for name in ("suppressed_by", "silenced_by") if getattr(incident, name) is not None]
        if held:
            update.remove(*held)
        if owed:
            owe(update, owed)
        condition = update.exists()
        if incident.last_notified_at is None:
            condition += f" AND {update.absent('last_notified_at')}"
        else:
            condition += f" AND {update.equals('last_notified_at', stored(incident.last_notified_at))}"
        if self._client.update(keys.INCIDENTS_PK, incident.sk, update, condition) is None:
            return None
        return Claim(incident.sk, now)

    def update_details(self, incident: Incident, details: Mapping[str, Any]) -> bool:
        """Keep the latest facts on an open incident (e.g. a later failure of the same target)."""
        update = Update().set(details=dict(details))
        return self._client.update(keys.INCIDENTS_PK, incident.sk, update, update.exists()) is not None

    def resolve(
        self, incident: Incident, owed: Mapping[str, Owed] | None = None, *, at: datetime | None = None
    ) -> bool:
        """Resolve the incident if it is still the one opened at ``incident.opened_at``; True when THIS
        call resolved it (and so sends the "resolved" message). With ``owed`` (that message) the incident
        is marked ``resolved_at`` and owes it; ``settle`` deletes it once sent. Without, it is deleted."""
        if owed:
            update = owe(Update().set(resolved_at=at or incident.opened_at), owed)
            still_open = (
                f"{update.exists()} AND {update.equals('opened_at', stored(incident.opened_at))}"
                f" AND {update.absent('resolved_at')}"
            )
            return self._client.update(keys.INCIDENTS_PK, incident.sk, update, still_open) is not None
        condition = Update()
        expression = f"{condition.exists()} AND {condition.equals('opened_at', stored(incident.opened_at))}"
        return self._client.delete(keys.INCIDENTS_PK, incident.sk, condition=condition, expression=expression)

    def settle(self, incident: Incident, name: str, entry: Owed, *, last: bool) -> bool:
        """``entry`` was sent: clear it; a resolved incident's last entry deletes it."""
        if last and incident.resolved_at is not None:
            return self._outbox.clear_by_delete(keys.INCIDENTS_PK, incident.sk, name, entry)
        return self._outbox.clear(keys.INCIDENTS_PK, incident.sk, name, entry)
