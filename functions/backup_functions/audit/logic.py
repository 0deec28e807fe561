"""Audit domain logic: agent events → ledger state, object verification, retention tags, alerts.

Idempotency (docs/ledger.md, "Audit"): every write is conditional or monotonic and carries only
values derived from the event (no "processed at" stamps), so a duplicate or an out-of-order event
(Succeeded before Started) leaves the same items. Terminal run states are final: the first
terminal event of a run wins; a later contradicting one is logged and changes nothing.

Side effects that must happen once (tags, GFS claims) happen BEFORE the run turns terminal; the
ones after it (job row, target state, incidents) are idempotent and re-run on redelivery, so a
crash in between is repaired by the SQS retry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from backup_contracts import ledger as keys
from backup_contracts.events import (
    AgentHeartbeat,
    BackupFailed,
    BackupStarted,
    BackupSucceeded,
    Contract,
    RestoreFailed,
    RestoreStarted,
    RestoreSucceeded,
)
from backup_contracts.fleet import Fleet, Target
from backup_contracts.naming import RETENTION_TAG, manifest_key
from backup_functions import alerts, retention
from backup_functions.audit.verify import Verification, missing, nothing_to_compare, verify_head, with_content_hash
from backup_functions.clock import Clock
from backup_functions.ledger import (
    FAILED,
    SUCCEEDED,
    TERMINAL_STATES,
    UNVERIFIED,
    Ledger,
    claim_incident_notification,
    release_incident_notification,
    target_subject,
)

log = logging.getLogger(__name__)

RESOLVED_BY_GOOD_BACKUP = (alerts.FAILED, alerts.UNVERIFIED)
DEFAULT_READ_LIMIT = 1024**3  # hash objects up to 1 GiB when S3 has no comparable checksum
READ_CHUNK = 8 * 1024 * 1024
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}


@dataclass(frozen=True)
class AuditConfig:
    pipeline: str
    bucket: str
    kms_key_arn: str
    alert_topic_arn: str
    job_deadline: timedelta
    ledger_ttl: timedelta
    heartbeat_timeout: timedelta
    read_limit: int = DEFAULT_READ_LIMIT

    @classmethod
    def from_fleet(cls, fleet: Fleet, *, bucket: str, kms_key_arn: str, alert_topic_arn: str) -> AuditConfig:
        p = fleet.pipeline
        return cls(
            pipeline=p.name,
            bucket=bucket,
            kms_key_arn=kms_key_arn,
            alert_topic_arn=alert_topic_arn,
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
    def __init__(self, fleet: Fleet, ledger: Ledger, *, s3: Any, sns: Any, config: AuditConfig, clock: Clock) -> None:
        self.fleet = fleet
        self.ledger = ledger
        self.s3 = s3
        self.sns = sns
        self.config = config
        self.clock = clock
        self._targets = {target.name: target for _, target in fleet.targets()}

    # ------------------------------------------------------------------ dispatch

    def handle(self, event: Contract) -> Outcome:
        if isinstance(event, BackupSucceeded):
            return self.succeeded(event)
        if isinstance(event, BackupFailed):
            return self.failed(event)
        if isinstance(event, BackupStarted):
            return self.started(event)
        if isinstance(event, AgentHeartbeat):
            return self.heartbeat(event)
        if isinstance(event, RestoreStarted | RestoreSucceeded | RestoreFailed):
            return Outcome(type(event).__name__, note="restore events belong to the restore coordinator; skipped")
        return Outcome(type(event).__name__, note="not an audit event; skipped")

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

    def _stored_terminal(self, event: BackupStarted) -> dict[str, Any] | None:
        run = self.ledger.get(keys.target_pk(event.target), keys.run_sk(event.started_at, event.run_id))
        if run is not None and run.get("state") in TERMINAL_STATES:
            return run
        return None

    def _situation(self, event: BackupStarted, since: datetime, **extra: Any) -> alerts.Situation:
        state = self.ledger.get_target_state(event.target) or {}
        target = self._target(event.target)
        last_good = state.get("last_good_at")
        return alerts.Situation(
            pipeline=self.config.pipeline,
            agent=event.agent,
            target=event.target,
            since=since,
            now=self.clock.now(),
            last_good_at=keys.parse_iso(last_good) if last_good else None,
            last_good_run_id=state.get("last_good_run_id"),
            last_good_bytes=state.get("last_good_bytes"),
            rpo=target.rpo_delta if target else None,
            job_id=event.job_id,
            run_id=event.run_id,
            **extra,
        )

    def _alert_incident(
        self, kind: str, event: BackupStarted, situation: alerts.Situation, details: dict[str, Any]
    ) -> bool:
        """Open the incident and alert once; a redelivery finds it notified and stays quiet."""
        subject = target_subject(event.target)
        incident, created = self.ledger.open_incident(
            subject, kind, opened_at=situation.since, details=details, target=event.target, agent=event.agent
        )
        if not created and incident.get("details", {}).get("run_id") != event.run_id:
            self.ledger.update_incident_details(subject, kind, details)  # a later failure: keep the latest facts
        if incident.get("last_notified_at"):
            return False
        # Claim the first notification (the watchdog uses the same claim), then publish; a failed
        # publish releases the claim so that the SQS retry (or the watchdog) sends it.
        sk, now = keys.incident_sk(subject, kind), self.clock.now()
        if not claim_incident_notification(self.ledger, sk, None, now):
            return False
        alert = alerts.build(kind, situation)
        try:
            alerts.publish(self.sns, self.config.alert_topic_arn, alert)
        except Exception:
            release_incident_notification(self.ledger, sk, now, None)
            raise
        log.info("alert sent", extra={"kind": kind, "subject": alert.subject})
        return True

    def _resolve_incidents(self, event: BackupSucceeded) -> list[str]:
        resolved = []
        subject = target_subject(event.target)
        for kind in RESOLVED_BY_GOOD_BACKUP:
            incident = self.ledger.get_incident(subject, kind)
            if incident is None:
                continue
            failed_started = incident.get("details", {}).get("started_at")
            if failed_started and failed_started > keys.iso(event.started_at):
                continue  # this good backup is older than the failure: the incident still stands
            closed = self.ledger.resolve_incident(subject, kind)
            if closed is None:
                continue
            resolved.append(kind)
            if closed.get("last_notified_at"):
                situation = self._situation(
                    event, keys.parse_iso(str(closed["opened_at"])), notify_count=int(closed.get("notify_count", 0))
                )
                alerts.publish(self.sns, self.config.alert_topic_arn, alerts.build(kind, situation, "resolved"))
        return resolved

    # ------------------------------------------------------------------ events

    def started(self, event: BackupStarted) -> Outcome:
        self.ledger.run_started(event, expires_at=self._expires(event.started_at))
        moved = self.ledger.job_started(
            event, default_deadline=self._default_deadline(event.started_at), expires_at=self._expires(event.started_at)
        )
        self.ledger.record_run_seen(
            event.target,
            event.agent,
            run_id=event.run_id,
            started_at=event.started_at,
            state="started",
            finished_at=None,
        )
        return Outcome("BackupStarted", state="started", first_time=moved)

    def verify(self, event: BackupSucceeded) -> Verification:
        request: dict[str, Any] = {"Bucket": event.bucket, "Key": event.key, "ChecksumMode": "ENABLED"}
        if event.version_id:
            request["VersionId"] = event.version_id
        try:
            head = self.s3.head_object(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in _NOT_FOUND_CODES:
                return missing(f"object s3://{event.bucket}/{event.key} not found")
            raise
        verification = verify_head(head, event, bucket=self.config.bucket, kms_key_arn=self.config.kms_key_arn)
        if verification.checksum_compared:
            return verification
        if event.bytes_stored > self.config.read_limit or head.get("ContentLength") != event.bytes_stored:
            return nothing_to_compare(verification, self.config.read_limit)
        get: dict[str, Any] = {"Bucket": event.bucket, "Key": event.key}
        if event.version_id:
            get["VersionId"] = event.version_id
        body = self.s3.get_object(**get)["Body"]
        try:
            return with_content_hash(verification, event, iter(lambda: body.read(READ_CHUNK), b""))
        finally:
            body.close()

    def _tag_object(self, location: dict[str, Any], value: str) -> None:
        current = self.s3.get_object_tagging(**location).get("TagSet", [])
        tags = [tag for tag in current if tag["Key"] != RETENTION_TAG] + [{"Key": RETENTION_TAG, "Value": value}]
        self.s3.put_object_tagging(**location, Tagging={"TagSet": tags})

    def _tag(self, event: BackupSucceeded, value: str) -> None:
        """Tag the backup object, and its manifest when there is one, with the retention tier."""
        location: dict[str, Any] = {"Bucket": event.bucket, "Key": event.key}
        if event.version_id:
            location["VersionId"] = event.version_id
        self._tag_object(location, value)
        try:
            self._tag_object({"Bucket": event.bucket, "Key": manifest_key(event.key)}, value)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in _NOT_FOUND_CODES:
                raise

    def _promote(self, event: BackupSucceeded, target: Target | None) -> dict[str, Any]:
        if target is None:
            return {}
        klass = self.fleet.retention_classes[target.retention]

        def claim(period: retention.Period) -> bool:
            return self.ledger.claim_period(
                event.target,
                period.key,
                run_id=event.run_id,
                started_at=event.started_at,
                expires_at=self._expires(event.started_at),
            )

        tier = retention.promote(klass, event.started_at, claim, target.timezone)
        value = retention.tag_value(target.retention, tier)
        self._tag(event, value)
        return {"retention_class": target.retention, "retention_tier": tier, "retention_tag": value}

    def succeeded(self, event: BackupSucceeded) -> Outcome:
        target = self._target(event.target)
        stored = self._stored_terminal(event)
        first_time = False
        problems: list[str] = []
        if stored is not None:
            state = str(stored["state"])
            problems = list((stored.get("verification") or {}).get("problems") or [])
        else:
            verification = self.verify(event)
            problems = list(verification.problems)
            facts: dict[str, Any] = {"verification": verification.as_item()}
            if verification.ok:
                facts.update(self._promote(event, target))
            state = SUCCEEDED if verification.ok else UNVERIFIED
            applied, current = self.ledger.run_ended(
                event, state, expires_at=self._expires(event.started_at), facts=facts
            )
            first_time = applied
            if not applied and current is not None:
                state = str(current.get("state"))
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

        deadline, expires = self._default_deadline(event.started_at), self._expires(event.started_at)
        self.ledger.job_ended(event, state, default_deadline=deadline, expires_at=expires)
        self.ledger.record_run_seen(
            event.target,
            event.agent,
            run_id=event.run_id,
            started_at=event.started_at,
            state=state,
            finished_at=event.finished_at,
        )
        if state == SUCCEEDED:
            self.ledger.record_good_backup(
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
            outcome.note = ", ".join(f"resolved {k}" for k in self._resolve_incidents(event)) or None
            return outcome

        error = "backup object does not match its run: " + "; ".join(problems)
        self.ledger.record_failure(event.target, event.agent, run_id=event.run_id, at=event.finished_at, error=error)
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
            state = str(stored["state"])
        else:
            applied, current = self.ledger.run_ended(event, FAILED, expires_at=self._expires(event.started_at))
            first_time = applied
            state = FAILED if applied or current is None else str(current.get("state"))
        outcome = Outcome("BackupFailed", state=state, first_time=first_time)
        if state != FAILED:
            outcome.note = f"run {event.run_id} already ended as {state}; Backup Failed ignored"
            log.warning(outcome.note)
            return outcome
        deadline, expires = self._default_deadline(event.started_at), self._expires(event.started_at)
        self.ledger.job_ended(event, FAILED, default_deadline=deadline, expires_at=expires)
        self.ledger.record_run_seen(
            event.target,
            event.agent,
            run_id=event.run_id,
            started_at=event.started_at,
            state=FAILED,
            finished_at=event.finished_at,
        )
        self.ledger.record_failure(
            event.target, event.agent, run_id=event.run_id, at=event.finished_at, error=event.error
        )
        details = {
            "run_id": event.run_id,
            "job_id": event.job_id,
            "started_at": keys.iso(event.started_at),
            "stage": event.stage,
            "exit_code": event.exit_code,
            "error": alerts.redact(event.error)[: alerts.ERROR_MAX],
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
        moved = self.ledger.record_heartbeat(
            event.agent,
            version=event.version,
            targets=event.targets,
            sent_at=event.sent_at,
            timeout=self.config.heartbeat_timeout,
        )
        return Outcome("AgentHeartbeat", state="heartbeat", first_time=moved)
