"""Retention that cannot lose the last backups: Object Lock per GFS tier, and each target's keep-set.

For every verified backup the audit (``logic.Auditor``) calls, both idempotent under redelivery and
out-of-order delivery:

- ``lock`` (before the run turns terminal): the Object Lock retention of the object and of its manifest
  becomes *the run's start + its GFS tier's days*, in the fleet's mode. A retention is never shortened
  (S3 refuses that in compliance mode; in governance mode it would need a bypass the audit does not
  have and must not use) and its mode is never changed: a longer one stays, a shorter one is extended.
  No retention is set once that date has passed (a late, old backup): S3 refuses a date in the past.
- ``keep`` (once the run is stored ``succeeded``): the target's keep-set — its newest ``keep_last`` good
  backups (``retention.keep_set``) — lives in the target's ledger item under an optimistic revision.
  Members carry the tag ``retention=keep``, which no lifecycle rule matches, and their run records lose
  their TTL; every other good backup carries its tier's tag. A member that leaves the set is recorded
  as *released* in the same ledger write (an owed side effect, docs/ledger.md): its tier tag and TTL
  are given back by whoever handles the target next, this delivery first, and only then settled.

Why a tag can never end up wrong: an object's tag is written from the membership in the ledger, and the
membership is read again after the tag is written. A backup enters the set at most once and leaves it at
most once — a released backup is older than ``keep_last`` good ones that stay good, so it never comes
back. So whoever writes a backup's tag last has either read its final membership, or is its releaser,
which writes only after committing the release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backup_contracts.events import BackupSucceeded
from backup_contracts.fleet import Fleet, Target
from backup_contracts.naming import KEEP_TAG_VALUE, RETENTION_TAG, manifest_key
from backup_functions import retention
from backup_functions.clock import Clock
from backup_functions.ledger import Ledger
from backup_functions.ledger.items import KeptBackup, TargetState
from backup_functions.ports import ObjectStore, Retention

if TYPE_CHECKING:
    from backup_functions.audit.wal_keeping import WalRanges

log = logging.getLogger(__name__)

KEEP_ATTEMPTS = 8  # concurrent audits of one target each retry the keep-set write this often
SAME_INSTANT = timedelta(seconds=1)  # S3 stores retain-until dates to the second


class KeepSetContention(RuntimeError):
    """The keep-set changed under every attempt; the SQS redelivery tries again."""


def plan_lock(current: Retention | None, wanted: Retention, now: datetime) -> Retention | None:
    """The retention to put on a version that has ``current``, or None when nothing is to be done."""
    if wanted.until <= now:
        return None  # it would already have ended
    if current is None:
        return wanted
    if current.until >= wanted.until - SAME_INSTANT:
        return None  # never shortened
    return Retention(current.mode, wanted.until)  # extended, in the mode it has (never switched)


@dataclass(frozen=True)
class Keeper:
    fleet: Fleet
    ledger: Ledger
    objects: ObjectStore
    clock: Clock
    ledger_ttl: timedelta
    wal: WalRanges | None = None  # a PITR base backup's own WAL range follows its tag (audit/wal_keeping.py)

    # ------------------------------------------------------------------ Object Lock
    def lock(self, event: BackupSucceeded, target: Target, tier: str) -> dict[str, Any]:
        """Lock the verified object and its manifest for the tier's days; the run's facts about it."""
        lock = self.fleet.pipeline.object_lock
        if not lock.enabled:
            return {}
        days = self.fleet.retention_classes[target.retention].tiers()[tier]
        wanted = Retention(lock.s3_mode, event.started_at + timedelta(days=days))
        now = self.clock.now()
        found, applied = self._lock_version(event.bucket, event.key, event.version_id, wanted, now)
        if not found:
            raise RuntimeError(f"s3://{event.bucket}/{event.key} vanished before it could be locked")
        self._lock_version(event.bucket, manifest_key(event.key), None, wanted, now)  # when there is one
        if applied is None:
            log.warning("not locked: its retention would have ended at %s", wanted.until.isoformat())
            return {}
        return {"lock_mode": applied.mode, "locked_until": applied.until}

    def _lock_version(
        self, bucket: str, key: str, version_id: str | None, wanted: Retention, now: datetime
    ) -> tuple[bool, Retention | None]:
        """(whether the version exists, the retention it has afterwards)."""
        found, current = self.objects.retention(bucket, key, version_id)
        if not found:
            return False, None
        plan = plan_lock(current, wanted, now)
        if plan is None:
            return True, current
        if not self.objects.set_retention(bucket, key, version_id, plan):
            return False, None
        return True, plan

    # ------------------------------------------------------------------ keep-set
    def keep(self, target: Target, started_at: datetime, run_id: str) -> None:
        """Admit a good backup to its target's keep-set (or tag it with its tier), and give every released
        member its tier back."""
        run = self.ledger.runs.get(target.name, started_at, run_id)
        if run is None or not run.good or not run.retention_tag or not run.bucket or not run.key:
            return
        candidate = KeptBackup(
            run_id=run.run_id,
            started_at=run.started_at,
            bucket=run.bucket,
            key=run.key,
            version_id=run.version_id,
            tag=run.retention_tag,
        )
        member = self._admit(target, candidate)
        self._apply(target.name, candidate, member=member)
        after = self.ledger.targets.get(target.name)
        if member and not _is_member(after, candidate):
            self._apply(target.name, candidate, member=False)  # released while it was being tagged
        for released in list(after.keep_released.values()) if after else []:
            self._apply(target.name, released, member=False)
            self.ledger.targets.settle_release(target.name, released.run_id)

    def _admit(self, target: Target, candidate: KeptBackup) -> bool:
        """Whether the candidate is in the keep-set once it is known (written if that changes the set)."""
        keep_last = self.fleet.retention_classes[target.retention].keep_last
        for _ in range(KEEP_ATTEMPTS):
            state = self.ledger.targets.get(target.name)
            current = state.keep if state else []
            chosen, released = retention.keep_set(current, candidate, keep_last)
            member = any(m.run_id == candidate.run_id for m in chosen)
            if [m.run_id for m in chosen] == [m.run_id for m in current]:
                return member
            revision = state.keep_revision if state else 0
            if self.ledger.targets.replace_keep(target.name, revision=revision, keep=chosen, released=released):
                log.info(
                    "keep-set of %s: %s", target.name, [m.run_id for m in chosen], extra={"released": len(released)}
                )
                return member
        raise KeepSetContention(f"the keep-set of {target.name} changed under {KEEP_ATTEMPTS} attempts")

    def _apply(self, target: str, backup: KeptBackup, *, member: bool) -> None:
        """A member: tagged keep, its run record without TTL. Otherwise: its tier tag, its TTL back."""
        value = KEEP_TAG_VALUE if member else backup.tag
        if member:
            self.ledger.runs.pin(target, backup.started_at, backup.run_id)
        if not self.objects.set_tag(backup.bucket, backup.key, backup.version_id, RETENTION_TAG, value):
            log.warning("s3://%s/%s is gone: nothing to tag %s", backup.bucket, backup.key, value)
        self.objects.set_tag(backup.bucket, manifest_key(backup.key), None, RETENTION_TAG, value)
        if self.wal is not None:
            self.wal.apply(self.fleet.target(target)[1], backup.run_id, value)
        if not member:
            expires = backup.started_at + self.ledger_ttl
            self.ledger.runs.unpin(target, backup.started_at, backup.run_id, expires_at=expires)


def _is_member(state: TargetState | None, backup: KeptBackup) -> bool:
    return state is not None and any(m.run_id == backup.run_id for m in state.keep)
