"""Restore request items (``RESTORE#<id>/STATE``): a restore or drill from its request to its end.

The request is created once (idempotent on restore_id); its state moves only along ``ALLOWED_FROM``
with a conditional update that also appends the step to a timestamped ``history``; terminal states
(succeeded, failed, rejected, validated) are final. While it waits for something (an approval, the
agent's end) it carries the sparse watch (``approval`` / ``restore``) that the restore tick expires.

A transition also records what it owes (``owe``: the job to send, the rejection to announce, …; see
``ledger/outbox.py``). While something is owed the item's watch is ``outbox`` (so the restore tick finds it);
clearing the last entry puts back the watch its state waits on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_functions.ledger.client import WATCH_ATTRIBUTES, LedgerClient, Update, epoch_seconds, watch
from backup_functions.ledger.items import WATCH_APPROVAL, WATCH_OUTBOX, WATCH_RESTORE, RestoreItem
from backup_functions.ledger.outbox import Outbox, Owed, owe

REQUESTED = "requested"
AWAITING_APPROVAL = "awaiting-approval"
DISPATCHED = "dispatched"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
REJECTED = "rejected"
VALIDATED = "validated"  # a dry run that passed every check
TERMINAL = frozenset({SUCCEEDED, FAILED, REJECTED, VALIDATED})
RESTORE_END_GRACE = timedelta(minutes=15)  # after the job deadline, a silent restore is failed
DONE_STAMPS = {"job": "job_sent_at"}  # when an owed entry was performed (``notified_at`` for the others)

ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    AWAITING_APPROVAL: (REQUESTED,),
    DISPATCHED: (REQUESTED, AWAITING_APPROVAL),
    RUNNING: (DISPATCHED,),
    SUCCEEDED: (DISPATCHED, RUNNING),
    FAILED: (REQUESTED, AWAITING_APPROVAL, DISPATCHED, RUNNING),
    REJECTED: (REQUESTED, AWAITING_APPROVAL),
    VALIDATED: (REQUESTED,),
}


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable digest of a request's content: a reused restore_id with other content is noticed."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def state_time_attribute(state: str) -> str:
    """``awaiting-approval`` → ``awaiting_approval_at``: when the request reached that state."""
    return f"{state.replace('-', '_')}_at"


def waits_on(item: RestoreItem) -> tuple[str, datetime] | None:
    """The watch the item's state waits on: its approval's deadline, or its agent's end."""
    if item.state == AWAITING_APPROVAL and item.approval_deadline is not None:
        return (WATCH_APPROVAL, item.approval_deadline)
    if item.state in (DISPATCHED, RUNNING) and item.deadline is not None:
        return (WATCH_RESTORE, item.deadline + RESTORE_END_GRACE)
    return None


class Restores:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client
        self._outbox = Outbox(client)

    def get(self, restore_id: str) -> RestoreItem | None:
        return RestoreItem.parse(self._client.get(keys.restore_pk(restore_id), keys.STATE_SK))

    def create(self, restore_id: str, attributes: Mapping[str, Any], *, at: datetime, expires_at: datetime) -> bool:
        """Create the request in state ``requested``; False when this restore_id already exists."""
        return self._client.put_if_absent(
            {
                **attributes,
                keys.PK: keys.restore_pk(restore_id),
                keys.SK: keys.STATE_SK,
                "type": "restore",
                "restore_id": restore_id,
                "state": REQUESTED,
                "requested_at": at,
                "updated_at": at,
                "history": [{"state": REQUESTED, "at": keys.iso(at)}],
                keys.TTL_ATTRIBUTE: epoch_seconds(expires_at),
            }
        )

    def transition(
        self,
        restore_id: str,
        to: str,
        *,
        at: datetime,
        attributes: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        watch_until: tuple[str, datetime] | None = None,
        allowed_from: Iterable[str] | None = None,
        owed: Mapping[str, Owed] | None = None,
    ) -> RestoreItem | None:
        """Move the request to ``to`` if its state allows it; the new item, or None when it did not.

        ``watch_until`` = (watch kind, deadline) sets the sparse watch; otherwise any watch is removed
        (a state that waits for nothing is not watched). ``owed``: what the new state owes, in the same
        write (it replaces whatever an earlier state owed); while it is owed the watch is ``outbox``.
        """
        update = Update().set(state=to, updated_at=at, **{state_time_attribute(to): at}, **dict(attributes or {}))
        update.append("history", {"state": to, "at": keys.iso(at)})
        owe(update, owed or {})
        removed = list(remove)
        if owed:
            update.set(**watch(restore_id, WATCH_OUTBOX, at))
        elif watch_until is not None:
            kind, deadline = watch_until
            update.set(**watch(restore_id, kind, deadline))
        else:
            removed += WATCH_ATTRIBUTES
        if removed:
            update.remove(*removed)
        condition = update.one_of("state", allowed_from if allowed_from is not None else ALLOWED_FROM[to])
        item = self._client.update(keys.restore_pk(restore_id), keys.STATE_SK, update, condition, return_new=True)
        return RestoreItem.parse(item)

    def clear(self, item: RestoreItem, name: str, entry: Owed, *, at: datetime, last: bool) -> bool:
        """``entry`` was performed: clear it and stamp when; the last one puts back the state's own watch."""
        then = Update().set(**{DONE_STAMPS.get(entry.kind, "notified_at"): at})
        if last:
            waiting = waits_on(item)
            if waiting is None:
                then.remove(*WATCH_ATTRIBUTES)
            else:
                then.set(**watch(item.restore_id, *waiting))
        return self._outbox.clear(item.pk, item.sk, name, entry, then)

    def mark(self, restore_id: str, **attributes: Any) -> None:
        """Set bookkeeping attributes (e.g. notified_at, job_sent_at) without changing the state."""
        update = Update().set(**attributes)
        self._client.update(keys.restore_pk(restore_id), keys.STATE_SK, update, update.exists())

    def due(self, now: datetime) -> list[RestoreItem]:
        """Requests whose approval or end is overdue (the ledger's sparse watch index)."""
        items = self._client.due_watches(now, kinds=(WATCH_APPROVAL, WATCH_RESTORE, WATCH_OUTBOX))
        return [RestoreItem.model_validate(item) for item in items if item.get("type") == "restore"]
