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
from backup_functions import alerts, retention
from backup_functions.audit.keeping import Keeper
from backup_functions.clock import Clock
from backup_functions.ledger import FAILED, SUCCEEDED, TERMINAL_STATES, UNVERIFIED, Ledger, RunRecord, target_subject
from backup_functions.ports import Notifier, ObjectStore
from backup_functions.verification import Verification, missing, nothing_to_compare, verify_backup, with_content_hash

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
        self.notifier = notifier
        self.config = config
        self.clock = clock
        self.keeper = Keeper(fleet, ledger, objects, clock, config.ledger_ttl)
        self._targets = {target.name: target for _, target in fleet.targets()}

    def handle(self, event: Contract) -> Outcome:
        if isinstance(event, BackupSucceeded):
            return self.succeeded(event)
        if isinstance(event, BackupFailed):
            return self.failed(event)
        if isinstance(event, BackupStarted):
            return self.started(event)
        if isinstance(event, AgentHeartbeat):
            return self.heartbeat(event)
        return Outcome(type(event).__name__, note="restore events belong to the restore coordinator; skipped")

    # ------------------------------------------------------------------ helpers
    def _target(self, name: str) -> Target | None:
        target = self._targets.get(name)
        if target is None:
            log.warning("event for target %r, which is not in the fleet: recorded without RPO or retention", name)
        return target

    def _expires(self, started_at: datetime) -> datetime:
        return started_at + self.config.ledger_ttl

    def _default_deadline(self, started_at: datetime) -> datetime:
        return started_at + self.config.job_deadline

    def _stored_terminal(self, event: BackupStarted) -> RunRecord | None:
        run = self.ledger.runs.get(event.target, event.started_at, event.run_id)
        return run if run is not None and run.state in TERMINAL_STATES else None

    def _situation(self, event: BackupStarted, since: datetime, **extra: Any) -> alerts.Situation:
        state = self.ledger.targets.get(event.target)
        target = self._target(event.target)
        return alerts.Situation(
            pipeline=self.config.pipeline,
            agent=event.agent,
            target=event.target,
            since=since,
            now=self.clock.now(),
            last_good_at=state.last_good_at if state else None,
            last_good_run_id=state.last_good_run_id if state else None,
            last_good_bytes=state.last_good_bytes if state else None,
            rpo=target.rpo_delta if target else None,
            job_id=event.job_id,
            run_id=event.run_id,
            **extra,
        )

    def _alert_incident(
        self, kind: str, event: BackupStarted, situation: alerts.Situation, details: dict[str, Any]
    ) -> bool:
        """Open the incident and alert once (the incident protocol); a redelivery stays quiet."""
        incidents = self.ledger.incidents
        incident, claim = incidents.open(
            target_subject(event.target),
            kind,
            opened_at=situation.since,
            claimed_at=self.clock.now(),
            details=details,
            target=event.target,
            agent=event.agent,
        )
        if claim is None:
            if incident.details.get("run_id") != event.run_id:
                incidents.update_details(incident, details)  # a later failure: keep the latest facts
            if incident.last_notified_at is not None:
                return False
            claim = incidents.claim_notification(incident, self.clock.now())  # its first send was released
            if claim is None:
                return False
        alert = alerts.build(kind, situation)
        try:
            self.notifier.notify(alert)
        except Exception:
            incidents.release(claim)  # the SQS redelivery (or the watchdog) sends it
            raise
        log.info("alert sent", extra={"kind": kind, "subject": alert.subject})
        return True

    def _resolve_incidents(self, event: BackupSucceeded) -> list[str]:
        resolved = []
        for kind in RESOLVED_BY_GOOD_BACKUP:
            incident = self.ledger.incidents.get(target_subject(event.target), kind)
            if incident is None:
                continue
            failed_started = incident.details.get("started_at")
            if failed_started and failed_started > keys.iso(event.started_at):
                continue  # this good backup is older than the failure: the incident still stands
            if not self.ledger.incidents.resolve(incident):
                continue
            resolved.append(kind)
            if incident.last_notified_at is not None:
                situation = self._situation(event, incident.opened_at, notify_count=incident.notify_count)
                self.notifier.notify(alerts.build(kind, situation, "resolved"))
        return resolved

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
        head = self.objects.head(event.bucket, event.key, event.version_id)
        if head is None:
            return missing(f"object s3://{event.bucket}/{event.key} not found")
        verification = verify_backup(head, event, bucket=self.config.bucket, kms_key_arn=self.config.kms_key_arn)
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

    def succeeded(self, event: BackupSucceeded) -> Outcome:
        target = self._target(event.target)
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
                rpo=target.rpo_delta if target else None,
                bucket=event.bucket,
                key=event.key,
                version_id=event.version_id,
                bytes_stored=event.bytes_stored,
                sha256=event.sha256,
                engine=event.engine,
            )
            if target is not None:
                self.keeper.keep(target, event.started_at, event.run_id)
            outcome.note = ", ".join(f"resolved {k}" for k in self._resolve_incidents(event)) or None
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
        situation = self._situation(event, event.finished_at, error=error, problems=tuple(problems))
        if self._alert_incident(alerts.UNVERIFIED, event, situation, details):
            outcome.alerts.append(alerts.UNVERIFIED)
        return outcome

    def failed(self, event: BackupFailed) -> Outcome:
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
        situation = self._situation(
            event,
            event.finished_at,
            stage=event.stage,
            exit_code=event.exit_code,
            error=event.error,
            stderr_tail=event.stderr_tail,
        )
        if self._alert_incident(alerts.FAILED, event, situation, {k: v for k, v in details.items() if v is not None}):
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
        return Outcome("AgentHeartbeat", state="heartbeat", first_time=moved)
