"""Ledger access for restores and drills (one DynamoDB table, keys from ``backup_contracts.ledger``).

Items this module reads and writes:

- the restore request ``pk=RESTORE#<restore_id> sk=STATE`` (``type=restore``): the request, the
  resolved source backup, the state with a timestamp per step (``<state>_at`` plus a ``history``
  list), approval token hash and deadline, the dispatched job, the agent's outcome. While it waits
  for something (an approval, the agent's end) it carries the sparse watch attributes with
  ``watch_kind`` ``approval`` or ``restore``; the restore tick expires them (the watchdog ignores
  these kinds);
- run records ``pk=TARGET#<t> sk=RUN#<iso started>#<run_id>`` (written by the audit function; read
  here to pick the backup to restore);
- the target state ``pk=TARGET#<t> sk=STATE``: drill fields ``last_drill_*`` (written here).

Every write is conditional: a request is created once (idempotent on restore_id), a state moves
only along the allowed transitions, and terminal states (succeeded, failed, rejected, validated)
are final.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_functions.ledger import Ledger
from backup_functions.ledger.client import Item
from backup_functions.ledger.items import WATCH_APPROVAL, WATCH_RESTORE
from backup_functions.ledger.restores import (
    ALLOWED_FROM,
    AWAITING_APPROVAL,
    DISPATCHED,
    FAILED,
    REJECTED,
    REQUESTED,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    VALIDATED,
    fingerprint,
)
from backup_functions.ledger.runs import run_id_time

__all__ = [
    "ALLOWED_FROM",
    "AWAITING_APPROVAL",
    "DISPATCHED",
    "FAILED",
    "REJECTED",
    "REQUESTED",
    "RUNNING",
    "SUCCEEDED",
    "TERMINAL",
    "VALIDATED",
    "WATCH_APPROVAL",
    "WATCH_RESTORE",
    "RestoreStore",
    "fingerprint",
]


class RestoreStore:
    """The restore items and the run records a restore reads, through the ledger package."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._client = ledger.client

    # ------------------------------------------------------------------ restore items
    def get(self, restore_id: str) -> Item | None:
        return self._client.get(keys.restore_pk(restore_id), keys.STATE_SK)

    def create(self, restore_id: str, attributes: Mapping[str, Any], *, at: datetime, expires_at: datetime) -> bool:
        """Create the request in state ``requested``; False when this restore_id already exists."""
        return self.ledger.restores.create(restore_id, attributes, at=at, expires_at=expires_at)

    def transition(
        self,
        restore_id: str,
        to: str,
        *,
        at: datetime,
        attributes: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        watch: tuple[str, str, datetime] | None = None,
        allowed_from: Iterable[str] | None = None,
    ) -> Item | None:
        """Move the request to ``to`` if its state allows it; returns the new item or None.

        ``watch`` = (subject name, watch kind, deadline) sets the sparse watch; otherwise any watch is
        removed (a state that waits for nothing is not watched).
        """
        item = self.ledger.restores.transition(
            restore_id,
            to,
            at=at,
            attributes=attributes,
            remove=remove,
            watch_until=(watch[1], watch[2]) if watch else None,
            allowed_from=allowed_from,
        )
        return self.get(restore_id) if item is not None else None

    def mark(self, restore_id: str, **attributes: Any) -> None:
        """Set bookkeeping attributes (e.g. notified_at, job_sent_at) without changing the state."""
        self.ledger.restores.mark(restore_id, **attributes)

    def due_watches(self, now: datetime) -> list[Item]:
        """Restore items whose approval or end is overdue (the ledger's sparse watch index)."""
        return self._client.due_watches(now, kinds=(WATCH_APPROVAL, WATCH_RESTORE))

    # ------------------------------------------------------------------ run records (read only)
    def _runs_between(self, target: str, low: str, high: str) -> Iterable[Item]:
        return self._client.query_between(keys.target_pk(target), low, high, newest_first=True)

    def run_by_id(self, target: str, run_id: str) -> Item | None:
        """The run record of ``run_id`` (a narrow key range when the id starts with its start time)."""
        started = run_id_time(run_id)
        if started is not None:
            low = f"{keys.RUN_SK_PREFIX}{keys.iso(started)}"
            high = f"{keys.RUN_SK_PREFIX}{keys.iso(started + timedelta(seconds=1))}"
            for item in self._runs_between(target, low, high):
                if item.get("run_id") == run_id:
                    return item
        for item in self._runs_between(target, keys.RUN_SK_PREFIX, keys.RUN_SK_PREFIX + "\uffff"):
            if item.get("run_id") == run_id:
                return item
        return None

    def latest_good_run(self, target: str, *, at_or_before: datetime | None = None) -> Item | None:
        """The newest succeeded run (whose dump started at or before ``at_or_before``, when given)."""
        high = keys.RUN_SK_PREFIX + ("\uffff" if at_or_before is None else keys.iso(at_or_before) + "#\uffff")
        for item in self._runs_between(target, keys.RUN_SK_PREFIX, high):
            if item.get("state") == SUCCEEDED:
                return item
        return None

    # ------------------------------------------------------------------ target state (drills)
    def target_states(self, targets: Iterable[str]) -> dict[str, Item]:
        found = self._client.batch_get((keys.target_pk(t), keys.STATE_SK) for t in targets)
        return {pk.removeprefix("TARGET#"): item for (pk, _), item in found.items()}

    def claim_drill_slot(self, target: str, slot: datetime, restore_id: str, at: datetime) -> bool:
        return self.ledger.targets.claim_drill_slot(target, slot, restore_id, at)

    def record_drill(
        self, target: str, *, finished_at: datetime, ok: bool, rto_s: float | None, restore_id: str, error: str | None
    ) -> bool:
        return self.ledger.targets.record_drill(
            target, finished_at=finished_at, ok=ok, rto_s=rto_s, restore_id=restore_id, error=error
        )
