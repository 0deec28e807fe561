"""Audit domain logic: agent events → ledger state, object verification, retention tags, alerts.

Idempotency (docs/ledger.md, "Audit"): every write is conditional or monotonic and carries only
values derived from the event (no "processed at" stamps), so a duplicate or an out-of-order event
(Succeeded before Started) leaves the same items. Terminal run states are final: the first
terminal event of a run wins; a later contradicting one is logged and changes nothing.

Side effects that must happen once (GFS claims, Object Lock retention) happen BEFORE the run turns
terminal; the ones after it (job row, target state, keep-set and retention tags, incidents) are
idempotent and re-run on redelivery, so a crash in between is repaired by the SQS retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.events import AgentHeartbeat, BackupFailed, BackupStarted, BackupSucceeded, Contract
from backup_contracts.fleet import Fleet, Target
from backup_contracts.redaction import redact
from backup_contracts.wal import WalArchived
from backup_functions import alerts, retention
from backup_functions.audit.incidents import AuditIncidents
from backup_functions.audit.keeping import Keeper
from backup_functions.audit.provenance import (
    DEFAULT_MAX_SKEW,
    Provenance,
    Refusal,
    key_layout_problems,
    time_problems,
    unreachable_problems,
)
from backup_functions.audit.wal import WalAudit
from backup_functions.audit.wal_keeping import WalRanges
from backup_functions.clock import Clock
from backup_functions.ledger import FAILED, SUCCEEDED, TERMINAL_STATES, UNVERIFIED, Ledger, RunRecord
from backup_functions.offsite.check import VaultConfig
from backup_functions.ports import Notifier, ObjectStore
from backup_functions.verification import (
    Verification,
    missing,
    nothing_to_compare,
    verify_backup,
    with_content_hash,
    with_manifest,
    with_problems,
)

log = logging.getLogger(__name__)

RESOLVED_BY_GOOD_BACKUP = (alerts.FAILED, alerts.UNVERIFIED)
DEFAULT_READ_LIMIT = 1024**3  # hash objects up to 1 GiB when S3 has no comparable checksum


@dataclass(frozen=True)
class AuditConfig:
    pipeline: str
    bucket: str
    kms_key_arn: str
    job_deadline: timedelta
    ledger_ttl: timedelta
    heartbeat_timeout: timedelta
    read_limit: int = DEFAULT_READ_LIMIT
    max_skew: timedelta = DEFAULT_MAX_SKEW  # how far ahead of the audit's clock an event's time may be

    @classmethod
    def from_fleet(cls, fleet: Fleet, *, bucket: str, kms_key_arn: str) -> AuditConfig:
        p = fleet.pipeline
        return cls(
            pipeline=p.name,
            bucket=bucket,
            kms_key_arn=kms_key_arn,
            job_deadline=timedelta(minutes=p.job_deadline_minutes),
            ledger_ttl=timedelta(days=p.ledger_ttl_days),
            heartbeat_timeout=timedelta(minutes=p.heartbeat_timeout_minutes),
        )


@dataclass
class Outcome:
    """What handling one event did (for metrics and logs)."""

    event: str
    state: str | None = None
    first_time: bool = False  # this delivery made the transition (count metrics once)
    bytes_stored: int = 0
    duration_s: float = 0.0
    alerts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    note: str | None = None
    refused: bool = False  # the event changed nothing: its sender, target or times cannot be believed


class Auditor:
    def __init__(
        self,
        fleet: Fleet,
        ledger: Ledger,
        *,
        objects: ObjectStore,
        notifier: Notifier,
        config: AuditConfig,
        clock: Clock,
    ) -> None:
        self.fleet = fleet
        self.ledger = ledger
        self.objects = objects
        self.config = config
        self.clock = clock
        self.provenance = Provenance(fleet, config.max_skew)
        self.incidents = AuditIncidents(fleet, ledger, notifier, pipeline=config.pipeline, clock=clock)
        wal_ranges = WalRanges(fleet, ledger, objects, clock)
        self.keeper = Keeper(fleet, ledger, objects, clock, config.ledger_ttl, wal=wal_ranges)
        self._targets = {target.name: target for _, target in fleet.targets()}
        self.vault = VaultConfig.from_fleet(fleet)  # None: no off-site copies to expect
        self.wal = WalAudit(
            fleet,
            ledger,
            objects,
            clock,
            provenance=self.provenance,
            bucket=config.bucket,
            kms_key_arn=config.kms_key_arn,
            ledger_ttl=config.ledger_ttl,
            ranges=wal_ranges,
        )

    def handle(self, event: Contract, *, sender: str | None) -> Outcome:
        """One agent event, from the agent its source names (``sender``); see ``provenance``."""
        now = self.clock.now()
        try:
            if isinstance(event, AgentHeartbeat):
                self.provenance.check_heartbeat(event, sender, now)
                return self.heartbeat(event)
            if isinstance(event, WalArchived):
                first, note = self.wal.archived(event, sender)
                return Outcome(
                    "WalArchived", state="archived", first_time=first, bytes_stored=event.bytes_stored, note=note
                )
            if not isinstance(event, BackupStarted):
                return Outcome(type(event).__name__, note="restore events belong to the restore coordinator; skipped")
            target = self.provenance.owned_target(event, sender)
            if isinstance(event, BackupSucceeded):
                return self.succeeded(event, target)
            if isinstance(event, BackupFailed):
                return self.failed(event)
            self.provenance.check_not_ahead(event.started_at, "started_at", now)
            return self.started(event)
        except Refusal as refusal:
            log.warning("%s refused: %s", type(event).__name__, refusal.reason)
            return Outcome(type(event).__name__, state="refused", note=refusal.reason, refused=True)

    # ------------------------------------------------------------------ helpers
    def _target(self, name: str) -> Target | None:
        return self._targets.get(name)

    def _expires(self, started_at: datetime) -> datetime:
        return started_at + self.config.ledger_ttl

    def _default_deadline(self, started_at: datetime) -> datetime:
        return started_at + self.config.job_deadline

    def _stored_terminal(self, event: BackupStarted) -> RunRecord | None:
        run = self.ledger.runs.get(event.target, event.started_at, event.run_id)
        return run if run is not None and run.state in TERMINAL_STATES else None

    def _end_job_and_target(self, event: BackupSucceeded | BackupFailed, state: str) -> None:
        deadline, expires = self._default_deadline(event.started_at), self._expires(event.started_at)
        self.ledger.jobs.ended(event, state, default_deadline=deadline, expires_at=expires)
        self.ledger.targets.record_run_seen(
            event.target,
            event.agent,
            run_id=event.run_id,
            started_at=event.started_at,
            state=state,
            finished_at=event.finished_at,
        )

    # ------------------------------------------------------------------ events
    def started(self, event: BackupStarted) -> Outcome:
        expires = self._expires(event.started_at)
        self.ledger.runs.started(event, expires_at=expires)
        moved = self.ledger.jobs.started(
            event, default_deadline=self._default_deadline(event.started_at), expires_at=expires
        )
        self.ledger.targets.record_run_seen(
            event.target,
            event.agent,
            run_id=event.run_id,
            started_at=event.started_at,
            state="started",
            finished_at=None,
        )
        return Outcome("BackupStarted", state="started", first_time=moved)

    def verify(self, event: BackupSucceeded) -> Verification:
        misplaced = key_layout_problems(event) + time_problems(event, self.provenance, self.clock.now())
        unreachable = unreachable_problems(event, self.config.bucket)
        if unreachable:  # never ask S3 about a bucket or a key that cannot be this run's
            return Verification(
                False, tuple(unreachable + misplaced), {"object_checked": False}, checksum_compared=False
            )
        head = self.objects.head(event.bucket, event.key, event.version_id)
        if head is None:
            return missing(f"object s3://{event.bucket}/{event.key} not found")
        verification = verify_backup(
            head, event, bucket=self.config.bucket, kms_key_arn=self.config.kms_key_arn, max_skew=self.config.max_skew
        )
        verification = with_problems(verification, misplaced)
        if "s3-composite-checksum" in verification.facts.get("checksum_sources", []):
            return with_manifest(verification, event, self.objects.manifest(event.bucket, event.key))
        if verification.checksum_compared:
            return verification
        if event.bytes_stored > self.config.read_limit or head.get("ContentLength") != event.bytes_stored:
            return nothing_to_compare(verification, self.config.read_limit)
        return with_content_hash(
            verification, event.sha256, self.objects.read(event.bucket, event.key, event.version_id)
        )

    def _promote(self, event: BackupSucceeded, target: Target | None) -> dict[str, Any]:
        if target is None:
            return {}
        klass = self.fleet.retention_classes[target.retention]

        def claim(period: retention.Period) -> bool:
            return self.ledger.runs.claim_period(
                event.target,
                period.key,
                run_id=event.run_id,
                started_at=event.started_at,
                expires_at=self._expires(event.started_at),
            )

        tier = retention.promote(klass, event.started_at, claim, target.timezone)
        value = retention.tag_value(target.retention, tier)
        facts = {"retention_class": target.retention, "retention_tier": tier, "retention_tag": value}
        return facts | self.keeper.lock(event, target, tier)  # the tag follows the keep-set (keeper.keep)

    def succeeded(self, event: BackupSucceeded, target: Target) -> Outcome:
        stored = self._stored_terminal(event)
        first_time = False
        if stored is not None:
            state = str(stored.state)
            problems = list(stored.verification.get("problems") or [])
        else:
            verification = self.verify(event)
            problems = list(verification.problems)
            facts: dict[str, Any] = {"verification": verification.as_item()}
            if verification.ok:
                facts.update(self._promote(event, target))
            state = SUCCEEDED if verification.ok else UNVERIFIED
            first_time, current = self.ledger.runs.ended(
                event, state, expires_at=self._expires(event.started_at), facts=facts
            )
            if current is not None:
                state = str(current.state)
        outcome = Outcome(
            "BackupSucceeded",
            state=state,
            first_time=first_time,
            bytes_stored=event.bytes_stored,
            duration_s=event.duration_s,
            problems=problems,
        )
        if state not in (SUCCEEDED, UNVERIFIED):
            outcome.note = f"run {event.run_id} already ended as {state}; Backup Succeeded ignored"
            log.warning(outcome.note)
            return outcome
        self._end_job_and_target(event, state)
        if state == SUCCEEDED:
            self.ledger.targets.record_good_backup(
                event.target,
                event.agent,
                run_id=event.run_id,
                finished_at=event.finished_at,
                rpo=None if target.rpo_needs_offsite else target.rpo_delta,  # moved once the copy exists
                bucket=event.bucket,
                key=event.key,
                version_id=event.version_id,
                bytes_stored=event.bytes_stored,
                sha256=event.sha256,
                engine=event.engine,
            )
            self.wal.base_backup(event, target)  # PITR: WAL expected from here on; its own range before its tag
            self.keeper.keep(target, event.started_at, event.run_id)
            if self.vault is not None:  # owed on every delivery: a redelivery completes a failed write
                self.ledger.offsite.expect(self.vault.expected_copy(event), expires_at=self._expires(event.started_at))
            outcome.note = ", ".join(f"resolved {k}" for k in self.incidents.resolve_after(event)) or None
            return outcome

        error = "backup object does not match its run: " + "; ".join(problems)
        self.ledger.targets.record_failure(
            event.target, event.agent, run_id=event.run_id, at=event.finished_at, error=error
        )
        details = {
            "run_id": event.run_id,
            "job_id": event.job_id,
            "started_at": keys.iso(event.started_at),
            "error": error,
            "problems": problems,
        }
        situation = self.incidents.situation(event, event.finished_at, error=error, problems=tuple(problems))
        if self.incidents.alert(alerts.UNVERIFIED, event, situation, details):
            outcome.alerts.append(alerts.UNVERIFIED)
        return outcome

    def failed(self, event: BackupFailed) -> Outcome:
        now = self.clock.now()
        if self.provenance.ahead(event.finished_at, now) or self.provenance.ahead(event.started_at, now):
            log.warning("Backup Failed dated ahead of the audit's clock; recorded at the audit's time")
            event = event.model_copy(
                update={
                    "started_at": self.provenance.clamp(event.started_at, now),
                    "finished_at": self.provenance.clamp(event.finished_at, now),
                }
            )
        stored = self._stored_terminal(event)
        first_time = False
        if stored is not None:
            state = str(stored.state)
        else:
            first_time, current = self.ledger.runs.ended(event, FAILED, expires_at=self._expires(event.started_at))
            state = FAILED if current is None else str(current.state)
        outcome = Outcome("BackupFailed", state=state, first_time=first_time)
        if state != FAILED:
            outcome.note = f"run {event.run_id} already ended as {state}; Backup Failed ignored"
            log.warning(outcome.note)
            return outcome
        self._end_job_and_target(event, FAILED)
        self.ledger.targets.record_failure(
            event.target, event.agent, run_id=event.run_id, at=event.finished_at, error=event.error
        )
        details = {
            "run_id": event.run_id,
            "job_id": event.job_id,
            "started_at": keys.iso(event.started_at),
            "stage": event.stage,
            "exit_code": event.exit_code,
            "error": redact(event.error)[: alerts.ERROR_MAX],
        }
        situation = self.incidents.situation(
            event,
            event.finished_at,
            stage=event.stage,
            exit_code=event.exit_code,
            error=event.error,
            stderr_tail=event.stderr_tail,
        )
        if self.incidents.alert(alerts.FAILED, event, situation, {k: v for k, v in details.items() if v is not None}):
            outcome.alerts.append(alerts.FAILED)
        return outcome

    def heartbeat(self, event: AgentHeartbeat) -> Outcome:
        moved = self.ledger.agents.record_heartbeat(
            event.agent,
            version=event.version,
            targets=event.targets,
            sent_at=event.sent_at,
            timeout=self.config.heartbeat_timeout,
        )
        self.wal.heartbeat(event)  # the agent's PITR targets' WAL statuses
        return Outcome("AgentHeartbeat", state="heartbeat", first_time=moved)
