"""Whether each good backup's off-site copy exists: read back from the vault, compared with its run.

S3 replication (the stack's, or the local pipeline's stand-in) copies every object under ``agents/`` to the
vault. Nothing here believes S3's ``ReplicationStatus``: a copy counts once the vault answers a HeadObject
for the backup's key (ChecksumMode enabled) whose size, run id and every checksum S3 or the metadata offer
match the run, encrypted SSE-KMS under a key of the vault's own account and region, and its manifest is
there too and names the same run, size and SHA-256 (a restore from the vault needs it).

``OffsiteCheck.tick(now)`` handles every copy whose check is due (``ledger.offsite``): verified → recorded
on the copy, on its run (where a restore from the vault reads it) and on the target (``backupctl status``'s
OFF-SITE column; for ``rpo_needs_offsite`` targets also the RPO watch); not yet → what was wrong, and the
next check at ``min(now + poll, due_by)``. A vault that refuses the read (AccessDenied, NoSuchBucket) is
that check's problem, recorded, and past the lag the page says it; a transient failure (5xx, throttling,
a broken connection) says nothing about the copy, so nothing is written and the next tick reads it again.
Neither fails the tick: the watchdog runs after the checks whatever they met.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backup_contracts.events import BackupSucceeded
from backup_contracts.fleet import Fleet
from backup_contracts.naming import vault_bucket_name
from backup_functions.ledger import Ledger, OffsiteCopy
from backup_functions.ports import ObjectStore
from backup_functions.verification import RUN_ID_METADATA_KEY, ClaimedObject, compare_head

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VaultConfig:
    """Where the vault is (the fleet's pipeline.offsite), how late a copy may be, how often to look."""

    bucket: str
    region: str
    account: str
    lag: timedelta
    poll: timedelta

    @classmethod
    def from_fleet(cls, fleet: Fleet) -> VaultConfig | None:
        offsite = fleet.pipeline.offsite
        if offsite is None:
            return None
        return cls(
            bucket=vault_bucket_name(fleet.pipeline.name, offsite.account),
            region=offsite.region,
            account=offsite.account,
            lag=offsite.lag_delta,
            poll=timedelta(minutes=fleet.pipeline.watchdog_interval_minutes),
        )

    def expected_copy(self, event: BackupSucceeded) -> OffsiteCopy:
        """The copy a good backup owes, due ``lag`` after the backup's end."""
        return OffsiteCopy.expected(
            target=event.target,
            started_at=event.started_at,
            run_id=event.run_id,
            agent=event.agent,
            good_at=event.finished_at,
            due_by=event.finished_at + self.lag,
            vault_bucket=self.bucket,
            key=event.key,
            bytes_stored=event.bytes_stored,
            sha256=event.sha256,
            s3_checksum_sha256=event.s3_checksum_sha256,
        )


@dataclass
class OffsiteReport:
    verified: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # the vault did not answer: AccessDenied, network
    errors: list[str] = field(default_factory=list)  # a check that failed half-way (repeated by the next tick)


def copy_problems(
    head: dict[str, Any] | None, manifest: dict[str, Any] | None, copy: OffsiteCopy, config: VaultConfig
) -> tuple[list[str], list[str]]:
    """(problems, checksum sources compared) of the vault's answers about ``copy``."""
    where = f"s3://{copy.vault_bucket}/{copy.key}"
    if head is None:
        return [f"{where} is not in the vault (yet): replication has not copied it"], []
    claimed = ClaimedObject(copy.run_id, copy.bytes_stored, copy.sha256, copy.s3_checksum_sha256)
    problems, sources = compare_head(head, claimed)
    if RUN_ID_METADATA_KEY not in {str(k).lower() for k in (head.get("Metadata") or {})}:
        problems.append(f"{where} carries no run-id metadata: it cannot be told apart from another run's")
    key_prefix = f"arn:aws:kms:{config.region}:{config.account}:key/"
    if head.get("ServerSideEncryption") != "aws:kms":
        problems.append(f"{where} is not SSE-KMS encrypted (ServerSideEncryption={head.get('ServerSideEncryption')})")
    elif not str(head.get("SSEKMSKeyId") or "").startswith(key_prefix):
        problems.append(f"{where} is encrypted with {head.get('SSEKMSKeyId')}, not a key of the vault's account")
    if manifest is None:
        problems.append(f"{where}.manifest.json is not in the vault (yet): a restore from the vault needs it")
    else:
        for name, expected in (("run_id", copy.run_id), ("sha256", copy.sha256), ("bytes_stored", copy.bytes_stored)):
            if manifest.get(name) != expected:
                problems.append(f"the vault's manifest says {name} {manifest.get(name)!r}, the run {expected!r}")
        sources = [*sources, "manifest"]
    if not sources and not problems:
        problems.append(f"{where}: no checksum to compare the copy with")
    return problems, sources


TRANSIENT_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"}
)


def _transient(exc: ClientError) -> bool:
    """A failure that says nothing about the copy (S3 busy, a 5xx); AccessDenied or NoSuchBucket do say
    something — the vault is unreadable for this role — and are recorded as the check's problem."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return str(exc.response.get("Error", {}).get("Code")) in TRANSIENT_CODES or status >= 500


class OffsiteCheck:
    def __init__(self, fleet: Fleet, ledger: Ledger, vault: ObjectStore, config: VaultConfig) -> None:
        self._fleet = fleet
        self._ledger = ledger
        self._vault = vault
        self._config = config

    def tick(self, now: datetime) -> OffsiteReport:
        report = OffsiteReport()
        for copy in self._ledger.offsite.due(now):
            try:
                self._check(copy, now, report)
            except (ClientError, BotoCoreError) as exc:  # a failed read or write: the copy stays due, checked again
                log.exception("off-site check of %s/%s failed; the next tick repeats it", copy.target, copy.run_id)
                report.errors.append(f"{copy.target}/{copy.run_id}: {type(exc).__name__}: {exc}")
        return report

    def _check(self, copy: OffsiteCopy, now: datetime, report: OffsiteReport) -> None:
        label = f"{copy.target}/{copy.run_id}"
        try:
            _, target = self._fleet.target(copy.target)
        except KeyError:
            return  # removed from the fleet: the watchdog clears its watch (watchdog.removal)
        sources: list[str] = []
        try:
            head = self._vault.head(copy.vault_bucket, copy.key, None)
            manifest = self._vault.manifest(copy.vault_bucket, copy.key) if head is not None else None
        except ClientError as exc:
            if _transient(exc):
                raise  # inconclusive: nothing is written, the copy stays due and the next tick reads it again
            log.warning("could not read %s's copy from the vault: %s", label, exc)
            report.unreadable.append(label)
            head, problems = None, [f"the vault could not be read: {exc}"]
        else:
            problems, sources = copy_problems(head, manifest, copy, self._config)
        if problems:
            next_check = min(now + self._config.poll, copy.due_by)
            self._ledger.offsite.checked(copy, at=now, problems=problems, next_check=next_check)
            (report.late if now >= copy.due_by else report.pending).append(label)
            return
        # Where the copy is goes on the run and the target first; marking the copy verified (which ends its
        # watch) comes last, so a write that fails in between is repeated by the next tick, never skipped.
        head = head or {}
        version = str(head["VersionId"]) if head.get("VersionId") not in (None, "null") else None
        self._ledger.runs.record_offsite(
            copy.target, copy.started_at, copy.run_id, bucket=copy.vault_bucket, version_id=version, at=now
        )
        rpo = target.rpo_delta if target.rpo_needs_offsite else None
        self._ledger.targets.record_offsite(
            copy.target, run_id=copy.run_id, good_at=copy.good_at, verified_at=now, rpo=rpo
        )
        self._ledger.offsite.verified(copy, at=now, version_id=version, checksum_sources=sources)
        report.verified.append(label)
