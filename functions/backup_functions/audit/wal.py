"""The audit of the WAL archive: ``WAL Archived`` events and the heartbeat's WAL statuses (docs/pitr.md).

A WAL file counts only when nothing about it rests on the event's word (design rule 8):

- the sender (the event source ``backup.agent.<agent>``) is the agent the event names, and that agent is
  the fleet's owner of the target, which is a PITR target (``engine: postgresql-physical``);
- the object sits in the pipeline's bucket at exactly ``naming.wal_object_key(agent, target, file)``;
- it exists, with the size the event reports, the ``sha256`` (and ``wal-file``) user metadata the agent's
  ``wal-push`` writes matching the event (and S3's full-object SHA-256 too, when S3 has one), SSE-KMS under
  the pipeline's key;
- its ``archived_at`` is not ahead of the audit's clock by more than the allowed skew.

Anything else is a ``Refusal``: logged, counted (``RejectedEvents``) and not recorded, like every refused
agent event. A refused file is, for the archive, a missing one: the watchdog's gap and lag alerts follow.

A verified file gets its retention before it is recorded: the tag ``retention=<class>-wal`` (the bucket's
lifecycle rule for the class expires it ``daily_days + 1`` days after it was written, so the point-in-time
window reaches back to the oldest daily base backup) and, with Object Lock, the same span as its retention —
or, inside a retained weekly, monthly or kept base backup's own range, that backup's (``wal_keeping.py``).
A redelivered event whose file is recorded already only brings the archive's summary up to date.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from backup_contracts.events import AgentHeartbeat, BackupSucceeded
from backup_contracts.fleet import Fleet, Target
from backup_contracts.naming import wal_object_key
from backup_contracts.wal import WalArchived
from backup_functions.audit.provenance import Provenance, Refusal
from backup_functions.audit.wal_keeping import WalRanges, manifest_range, segment_size_of, start_file_of
from backup_functions.clock import Clock
from backup_functions.ledger import Ledger
from backup_functions.ports import ObjectStore
from backup_functions.verification import SHA256_METADATA_KEY, full_object_sha256, same_kms_key

log = logging.getLogger(__name__)

WAL_FILE_METADATA_KEY = "wal-file"


def object_problems(head: Mapping[str, Any], event: WalArchived, kms_key_arn: str) -> list[str]:
    """What in the stored object contradicts the event (nothing: the file is the one the event names)."""
    problems = []
    if head.get("ContentLength") != event.bytes_stored:
        problems.append(f"the object is {head.get('ContentLength')} bytes, the event says {event.bytes_stored}")
    metadata = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
    stored_sha = metadata.get(SHA256_METADATA_KEY)
    if stored_sha is None:
        problems.append("the object carries no sha256 metadata: nothing says it is the file the event names")
    elif stored_sha.lower() != event.sha256:
        problems.append(f"the object's sha256 metadata is {stored_sha}, the event says {event.sha256}")
    s3_sha = full_object_sha256(head)
    if s3_sha is not None and s3_sha != event.sha256:
        problems.append(f"S3's SHA-256 of the object is {s3_sha}, the event says {event.sha256}")
    named = metadata.get(WAL_FILE_METADATA_KEY)
    if named is None or named != event.file:
        problems.append(f"the object's wal-file metadata is {named!r}, not {event.file!r}")
    sse, key = head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")
    if sse != "aws:kms":
        problems.append(f"the object is not SSE-KMS encrypted (ServerSideEncryption={sse})")
    elif not same_kms_key(key, kms_key_arn):
        problems.append(f"the object is encrypted with KMS key {key}, not the pipeline's key")
    return problems


class WalAudit:
    """The WAL side of the audit (``logic.Auditor`` delegates ``WAL Archived`` and heartbeats here)."""

    def __init__(
        self,
        fleet: Fleet,
        ledger: Ledger,
        objects: ObjectStore,
        clock: Clock,
        *,
        provenance: Provenance,
        bucket: str,
        kms_key_arn: str,
        ledger_ttl: timedelta,
        ranges: WalRanges,
    ) -> None:
        self.fleet = fleet
        self.ledger = ledger
        self.objects = objects
        self.clock = clock
        self.provenance = provenance
        self.bucket = bucket
        self.kms_key_arn = kms_key_arn
        self.ledger_ttl = ledger_ttl
        self.ranges = ranges

    def owned_pitr_target(self, agent: str, name: str) -> Target:
        try:
            owner, target = self.fleet.target(name)
        except KeyError:
            raise Refusal(f"target {name!r} is not in the fleet; nothing is recorded for it") from None
        if owner.name != agent:
            raise Refusal(f"agent {agent} reported WAL of target {name}, which belongs to agent {owner.name}")
        if not target.pitr or target.wal_rpo_delta is None:
            raise Refusal(f"target {name} archives no WAL (engine {target.engine}, not postgresql-physical)")
        return target

    def archived(self, event: WalArchived, sender: str | None) -> tuple[bool, str | None]:
        """Verify and record one archived file: (recorded for the first time, a note). Raises ``Refusal``."""
        now = self.clock.now()
        self.provenance.check_sender(event.agent, sender)
        target = self.owned_pitr_target(event.agent, event.target)
        self.provenance.check_not_ahead(event.archived_at, "archived_at", now)
        expected = wal_object_key(event.agent, event.target, event.file)
        if event.bucket != self.bucket:
            raise Refusal(f"the WAL object is in bucket {event.bucket!r}, not the pipeline's bucket {self.bucket!r}")
        if event.key != expected:
            raise Refusal(f"the WAL object key {event.key!r} is not this file's ({expected!r})")
        wal_rpo = target.wal_rpo_delta
        assert wal_rpo is not None  # noqa: S101 - owned_pitr_target refuses targets without one
        expires = event.archived_at + self.ledger_ttl
        stored = self.ledger.wal.file(event.target, event.file)
        if stored is not None:
            if (stored.sha256, stored.key) != (event.sha256, event.key):
                raise Refusal(f"{event.file} is recorded already with SHA-256 {stored.sha256}, not {event.sha256}")
            self.ledger.wal.record_file(event, recorded_at=stored.recorded_at, wal_rpo=wal_rpo, expires_at=expires)
            return False, f"{event.file} was recorded already"
        head = self.objects.head(event.bucket, event.key, None)
        if head is None:
            raise Refusal(f"the WAL object s3://{event.bucket}/{event.key} does not exist")
        problems = object_problems(head, event, self.kms_key_arn)
        if problems:
            raise Refusal(f"the WAL object does not match the event: {'; '.join(problems)}")
        chosen = self._keep(event, target, now)
        first = self.ledger.wal.record_file(event, recorded_at=now, wal_rpo=wal_rpo, expires_at=expires)
        if (again := self.ranges.choice(target, event.file, event.archived_at)) != chosen:
            self.ranges.tag_file(target, event.bucket, event.key, *again)  # a range changed meanwhile
        return first, None

    def _keep(self, event: WalArchived, target: Target, now: datetime) -> tuple[str, datetime]:
        """Retention before the file counts: its tag (the window's, or a retained base backup's whose range
        holds it) and with Object Lock its retention (never shortened); what was chosen."""
        tag, until = self.ranges.choice(target, event.file, event.archived_at)
        self.ranges.tag_file(target, event.bucket, event.key, tag, until)
        return tag, until

    def heartbeat(self, event: AgentHeartbeat) -> int:
        """Store the heartbeat's WAL statuses on the archives of the PITR targets the agent owns; how many."""
        now = self.clock.now()
        recorded = 0
        for status in event.wal or ():
            try:
                target = self.owned_pitr_target(event.agent, status.target)
            except Refusal as refusal:
                log.warning("WAL status of %s ignored: %s", status.target, refusal.reason)
                continue
            if self.provenance.ahead(status.checked_at, now) or target.wal_rpo_delta is None:
                log.warning("WAL status of %s ignored: checked_at is ahead of the audit's clock", status.target)
                continue
            recorded += self.ledger.wal.record_server_status(event.agent, status, wal_rpo=target.wal_rpo_delta)
        return recorded

    def base_backup(self, event: BackupSucceeded, target: Target) -> None:
        """A good base backup of a PITR target: WAL is expected from its end, from its first segment on."""
        if not target.pitr or target.wal_rpo_delta is None:
            return
        manifest = self.objects.manifest(event.bucket, event.key)
        start = start_file_of(manifest)
        self.ledger.wal.base_backup(
            event.target,
            event.agent,
            start_file=start,
            good_at=event.finished_at,
            wal_rpo=target.wal_rpo_delta,
            segment_size=segment_size_of(manifest),
        )
        self.ranges.record(target, event.run_id, event.started_at, *manifest_range(manifest))
