"""Off-site copies (``TARGET#<t>/OFFSITE#<started>#<run_id>``): each good backup's copy in the vault, from
expected to verified (pipeline.offsite; docs/ledger.md).

The audit expects a copy when a run becomes a good backup. The item's watch is its next check: the off-site
check (``backup_functions.offsite``) reads the copy back from the vault at every due watch and, while it is
not there or does not match, moves the watch to ``min(now + poll, due_by)``, where ``due_by`` is the good
backup's end + the fleet's lag. A copy still unverified at ``due_by`` keeps its watch there: the watchdog
sees it overdue and pages "off-site copy missing" (one incident per target) until the copy verifies and
the watch is removed. Writes are conditional on the copy still pending, so a repeated check is harmless.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from backup_contracts import ledger as keys
from backup_functions.ledger.client import LedgerClient, Update, epoch_seconds, watch
from backup_functions.ledger.items import WATCH_OFFSITE, WatchedItem, _named_by_key

PENDING = "pending"
VERIFIED = "verified"
PROBLEMS_KEPT = 5


class OffsiteCopy(WatchedItem):
    target: str
    agent: str | None = None
    run_id: str
    started_at: datetime
    good_at: datetime  # when the backup became good (its run's end)
    due_by: datetime  # good_at + the lag: unverified by then, it is missing
    vault_bucket: str
    key: str
    bytes_stored: int
    sha256: str
    s3_checksum_sha256: str | None = None
    state: str = PENDING
    last_checked_at: datetime | None = None
    problems: list[str] = Field(default_factory=list)  # what the last check found wrong
    verified_at: datetime | None = None
    vault_version_id: str | None = None
    checksum_sources: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _target_from_key(cls, data: Any) -> Any:
        return _named_by_key(data, "target")

    @classmethod
    def expected(cls, *, target: str, started_at: datetime, run_id: str, **fields: Any) -> OffsiteCopy:
        """A new pending copy of the run ``target``/``started_at``/``run_id`` (not yet stored)."""
        pk, sk = keys.target_pk(target), keys.offsite_sk(started_at, run_id)
        return cls(pk=pk, sk=sk, target=target, started_at=started_at, run_id=run_id, **fields)

    @property
    def late(self) -> bool:
        """Its watch is the copy's deadline (not a check in between): overdue, the copy is missing."""
        return self.watch_deadline is not None and self.watch_deadline >= self.due_by


class OffsiteCopies:
    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    def get(self, target: str, started_at: datetime, run_id: str) -> OffsiteCopy | None:
        return OffsiteCopy.parse(self._client.get(keys.target_pk(target), keys.offsite_sk(started_at, run_id)))

    def newest(self, target: str, *, limit: int = 10) -> list[OffsiteCopy]:
        items = self._client.query(keys.target_pk(target), keys.OFFSITE_SK_PREFIX, newest_first=True, limit=limit)
        return [OffsiteCopy.model_validate(item) for item in items]

    def due(self, now: datetime) -> list[OffsiteCopy]:
        """Every pending copy whose check (or deadline) has come."""
        return [OffsiteCopy.model_validate(item) for item in self._client.due_watches(now, kinds=(WATCH_OFFSITE,))]

    def expect(self, copy: OffsiteCopy, *, expires_at: datetime) -> bool:
        """Record that this good backup owes a copy, first checked at once; False when already expected."""
        fields = copy.model_dump(mode="python", exclude_none=True, exclude={"pk", "sk", "owed", "item_type"})
        fields |= watch(copy.target, WATCH_OFFSITE, copy.good_at)
        item = {
            keys.PK: copy.pk,
            keys.SK: copy.sk,
            "type": "offsite",
            **fields,
            keys.TTL_ATTRIBUTE: epoch_seconds(expires_at),
        }
        return self._client.put_if_absent(item)

    def checked(self, copy: OffsiteCopy, *, at: datetime, problems: list[str], next_check: datetime) -> bool:
        """Not (yet) verified: what was wrong, and when to look again (``due_by`` at the latest)."""
        update = Update().set(
            last_checked_at=at, problems=problems[:PROBLEMS_KEPT], **watch(copy.target, WATCH_OFFSITE, next_check)
        )
        return self._update(copy, update, update.equals("state", PENDING))

    def verified(self, copy: OffsiteCopy, *, at: datetime, version_id: str | None, checksum_sources: list[str]) -> bool:
        """The copy is in the vault and matches the run: no longer watched. False when already recorded."""
        update = Update().set(
            state=VERIFIED, verified_at=at, last_checked_at=at, problems=[], checksum_sources=checksum_sources
        )
        if version_id:
            update.set(vault_version_id=version_id)
        update.remove(keys.WATCH_SHARD, keys.WATCH_KIND, keys.WATCH_DEADLINE)
        return self._update(copy, update, update.equals("state", PENDING))

    def _update(self, copy: OffsiteCopy, update: Update, condition: str) -> bool:
        return self._client.update(copy.pk, copy.sk, update, condition) is not None
