"""Silences (``SILENCES/<expires_at>#<silence_id>``): what holds pages, from request to end.

The sort key begins with the expiry, so the silences still in force are one Query from ``now`` on (the
expired ones are never read again on the hot path) and a report's period is one Query from its start.
A silence carries a watch (kind ``silence``) whose deadline is its expiry — or now, once lifted — so the
watchdog's tick that sees it due re-pages what the silence still held, then clears the watch
(``ended_at``). The notice that announced it (``SILENCE SET``) is owed in the write that records it.

Nothing is deleted: the ledger keeps who silenced what, why and when (the evidence report shows it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from backup_contracts import ledger as keys
from backup_contracts import silences as rules
from backup_contracts.events import SilenceRequested
from backup_functions import alert_kinds
from backup_functions.ledger.client import WATCH_ATTRIBUTES, LedgerClient, Update, watch
from backup_functions.ledger.items import WatchedItem
from backup_functions.ledger.outbox import Outbox, Owed, owe
from backup_functions.ledger.outbox import stored as stored_owed

SILENCES_PK = "SILENCES"
NEVER_HELD = frozenset({alert_kinds.PIPELINE_AGENTS, alert_kinds.DISPATCHER})  # the pipeline itself is down
WATCH_SILENCE = "silence"
_AFTER_EVERY_TIME = "~"  # sorts after every ISO timestamp


def silence_sk(expires_at: datetime, silence_id: str) -> str:
    return f"{keys.iso(expires_at)}#{silence_id}"


class SilenceItem(WatchedItem):
    silence_id: str
    target: str | None = None
    agent: str | None = None
    starts_at: datetime
    expires_at: datetime
    requested_by: str
    reason: str
    recorded_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lift_reason: str | None = None
    ended_at: datetime | None = None  # the watchdog re-paged what it held and cleared its watch

    def in_force(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at and self.ended_at is None

    @property
    def ends_at(self) -> datetime:
        return min(self.expires_at, self.lifted_at) if self.lifted_at else self.expires_at

    def same_request(self, request: SilenceRequested) -> bool:
        return (self.target, self.agent, self.expires_at, self.requested_by, self.reason) == (
            request.target,
            request.agent,
            request.expires_at,
            request.requested_by,
            request.reason,
        )

    def describe(self) -> str:
        globs = [f"{kind} {glob}" for kind, glob in (("target", self.target), ("agent", self.agent)) if glob]
        return f"silence {self.silence_id} ({', '.join(globs)}) by {self.requested_by}: {self.reason}"


def holding(silences: Iterable[SilenceItem], *, kind: str, target: str | None, agent: str | None) -> SilenceItem | None:
    """Of ``silences`` (in force), the one ending last that holds an incident of ``kind`` about ``target``
    (run by ``agent``) or about the agent itself; never one of the pipeline's own (``NEVER_HELD``)."""
    if kind in NEVER_HELD:
        return None
    held = [s for s in silences if rules.matches(s.target, s.agent, target=target, agent=agent)]
    return max(held, key=lambda s: s.ends_at, default=None)


class Silences:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client
        self._outbox = Outbox(client)

    def not_expired(self, now: datetime) -> list[SilenceItem]:
        """Silences whose expiry lies after ``now`` (in force, booked ahead, or lifted but not yet ended)."""
        items = self._client.query_between(SILENCES_PK, keys.iso(now), _AFTER_EVERY_TIME)
        return [SilenceItem.model_validate(item) for item in items]

    def in_force(self, now: datetime) -> list[SilenceItem]:
        return [silence for silence in self.not_expired(now) if silence.in_force(now)]

    def overlapping(self, start: datetime, end: datetime) -> list[SilenceItem]:
        """Every silence that held anything between ``start`` and ``end`` (the evidence report)."""
        items = map(
            SilenceItem.model_validate, self._client.query_between(SILENCES_PK, keys.iso(start), _AFTER_EVERY_TIME)
        )
        return [silence for silence in items if silence.starts_at < end and silence.ends_at > start]

    def find(self, silence_id: str, now: datetime) -> SilenceItem | None:
        """The not yet expired silence with this id (ids are only looked up while they can still matter)."""
        return next((s for s in self.not_expired(now) if s.silence_id == silence_id), None)

    def record(self, request: SilenceRequested, *, now: datetime, owed: Mapping[str, Owed]) -> tuple[SilenceItem, bool]:
        """Record the silence once (owing ``owed``); returns it and whether THIS call recorded it."""
        starts = rules.effective_start(request, now)
        item = {
            keys.PK: SILENCES_PK,
            keys.SK: silence_sk(request.expires_at, request.silence_id),
            "type": "silence",
            "silence_id": request.silence_id,
            "starts_at": keys.iso(starts),
            "expires_at": keys.iso(request.expires_at),
            "requested_by": request.requested_by,
            "reason": request.reason,
            "recorded_at": keys.iso(now),
            "owed": stored_owed(owed),
            **{name: glob for name, glob in (("target", request.target), ("agent", request.agent)) if glob},
            **watch(request.silence_id, WATCH_SILENCE, request.expires_at),
        }
        if self._client.put_if_absent(item):
            return SilenceItem.model_validate({**item, "owed": dict(owed)}), True
        existing = self._client.get(SILENCES_PK, str(item[keys.SK]))
        assert existing is not None  # noqa: S101 - the put found it; silences are never deleted
        return SilenceItem.model_validate(existing), False

    def lift(
        self, silence: SilenceItem, *, by: str, reason: str | None, now: datetime, owed: Mapping[str, Owed]
    ) -> bool:
        """End it now (owing ``owed``): the watchdog's next tick re-pages what it held. False when it was
        already lifted or ended."""
        update = Update().set(lifted_at=now, lifted_by=by, **({"lift_reason": reason} if reason else {}))
        owe(update.set(**watch(silence.silence_id, WATCH_SILENCE, now)), owed)
        condition = f"{update.exists()} AND {update.absent('lifted_at')} AND {update.absent('ended_at')}"
        return self._client.update(SILENCES_PK, silence.sk, update, condition) is not None

    def end(self, silence: SilenceItem, now: datetime) -> bool:
        """The watchdog re-paged what it held: clear its watch, once."""
        update = Update().set(ended_at=now).remove(*WATCH_ATTRIBUTES)
        condition = f"{update.exists()} AND {update.absent('ended_at')}"
        return self._client.update(SILENCES_PK, silence.sk, update, condition) is not None

    def settle(self, silence: SilenceItem, name: str, entry: Owed) -> bool:
        return self._outbox.clear(SILENCES_PK, silence.sk, name, entry)
