"""The outbox: side effects a state change owes, recorded on the ledger item in the same conditional write.

A write that changes an item's state also sets ``owed`` — a map from a name (``alert``, ``event``, ``job``,
``drill``, ``drill-result``, …) to an ``Owed`` entry that says exactly what is owed: the whole message as it
will be sent (so a re-send is the same message, and an identifier announced to a person never changes), or
the job and where it goes. Then the owner performs each entry (``ports.Courier``) and clears it
(``Outbox.clear``: a conditional write on the entry's id, so a newer obligation with the same name is never
cleared by mistake). Whatever is still owed — the call failed, the function died — is performed by the
redelivered record or the next tick, which find it on the item.

Delivery is at least once, and exactly once under a single fault: the clear after a performed side effect is
retried in place (``CLEAR_ATTEMPTS``), so one failed call never makes the entry look unperformed; only a
function that dies between the side effect and its clear (or a clear that fails every attempt) performs it
again. A tick completes an entry another invocation owes only after ``GRACE`` (longer than any function runs),
and one owed by an earlier tick at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from backup_contracts import ledger as keys
from backup_functions.ledger.client import LedgerClient, Update

log = logging.getLogger(__name__)

OWED = "owed"
GRACE = timedelta(minutes=10)  # > the functions' 60 s timeout and the event queues' 6 min visibility timeout
CLEAR_ATTEMPTS = 3
Owner = Literal["handler", "tick"]


class Owed(BaseModel):
    """One side effect still owed: ``kind`` says who performs it, ``payload`` exactly what it is; ``id`` is
    its stable identity (sent as a deduplication attribute where the transport carries one)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    kind: str  # alert | event | job | drill | drill-result
    owed_at: datetime
    by: Owner = "handler"
    payload: dict[str, Any]

    def due(self, now: datetime) -> bool:
        """May a tick at ``now`` perform it? One an earlier tick owes at once; a handler's after ``GRACE``
        (its own redelivery comes first)."""
        if self.by == "tick":
            return self.owed_at <= now
        return self.owed_at + GRACE <= now


def stored(entries: Mapping[str, Owed]) -> dict[str, Any]:
    """The ``owed`` map as it is written."""
    return {
        name: {**entry.model_dump(mode="json"), "owed_at": keys.iso(entry.owed_at)} for name, entry in entries.items()
    }


def owe(update: Update, entries: Mapping[str, Owed]) -> Update:
    """Add to ``update``: the item now owes exactly ``entries`` (nothing, when empty)."""
    if entries:
        update.set(**{OWED: stored(entries)})
    else:
        update.remove(OWED)
    return update


def _path(update: Update, name: str) -> str:
    return f"{update.name(OWED)}.{update.name(name)}"


class Outbox:
    """Clears performed entries (a conditional write on the entry's id, retried in place)."""

    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    def clear(self, pk: str, sk: str, name: str, entry: Owed, then: Update | None = None) -> bool:
        """``entry`` was performed: remove it (and apply ``then`` in the same write). False when it was
        cleared already (by a redelivery or a tick)."""
        update = then or Update()
        path = _path(update, name)
        update.removes.append(path)
        condition = f"{path}.{update.name('id')} = {update.value(entry.id)}"
        return self._retry(lambda: self._client.update(pk, sk, update, condition) is not None, entry)

    def clear_by_delete(self, pk: str, sk: str, name: str, entry: Owed) -> bool:
        """``entry`` was the item's last duty (a resolved incident's message): delete the item."""
        condition = Update()
        expression = f"{_path(condition, name)}.{condition.name('id')} = {condition.value(entry.id)}"
        return self._retry(lambda: self._client.delete(pk, sk, condition=condition, expression=expression), entry)

    @staticmethod
    def _retry(write: Any, entry: Owed) -> bool:
        for attempt in range(1, CLEAR_ATTEMPTS + 1):
            try:
                return bool(write())
            except (ClientError, BotoCoreError):
                if attempt == CLEAR_ATTEMPTS:
                    raise
                log.warning("clearing %s (%s) failed; retrying (it was performed)", entry.id, entry.kind)
        return False
