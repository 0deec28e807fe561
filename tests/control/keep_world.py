"""Backups as an agent stores and reports them, and an audit to hand them to: what the keep-set, Object Lock
and lifecycle tests share (moto in-process, the control plane's ``Aws`` fixture)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.fleet import Fleet
from backup_contracts.naming import RETENTION_TAG, agent_event_source, backup_object_key, manifest_key
from backup_functions.audit import logic as audit_logic
from backup_functions.envelope import receive
from backup_functions.ledger.items import RunRecord, TargetState
from backup_functions.ports import S3ObjectStore, SnsNotifier
from local_pipeline.clock import SimulatedClock

from .conftest import Aws, eventbridge_event

AGENT = "db-1"
BODY = b"-- PostgreSQL database dump\n" + b"k" * 1024


@dataclass(frozen=True)
class Backup:
    """One run of a target: its object (and manifest) in the bucket and the events the agent sent."""

    target: str
    run_id: str
    started_at: datetime
    key: str
    version_id: str | None
    started: dict[str, Any]
    ended: dict[str, Any]

    @property
    def finished_at(self) -> datetime:
        return self.started_at + timedelta(minutes=3)

    @property
    def manifest(self) -> str:
        return manifest_key(self.key)


def _base(aws: Aws, target: str, run_id: str, started: datetime, key: str) -> dict[str, Any]:
    return {
        "job_id": keys.scheduled_job_id(target, started.replace(minute=0, second=0, microsecond=0)),
        "run_id": run_id,
        "target": target,
        "agent": AGENT,
        "started_at": started.isoformat(),
        "bucket": aws.bucket,
        "key": key,
    }


def good_run(aws: Aws, started: datetime, *, target: str = "orders-0", run_id: str | None = None) -> Backup:
    """An agent's good run: the object and its manifest stored, Started and Succeeded to deliver."""
    run_id = run_id or f"{started:%Y%m%dT%H%M%SZ}-{target}"
    key = backup_object_key(AGENT, target, run_id, started, "pgdump.zst")
    version = aws.put_backup_object(key, BODY, run_id=run_id, written_at=started + timedelta(minutes=3))
    aws.session.client("s3").put_object(
        Bucket=aws.bucket, Key=manifest_key(key), Body=json.dumps({"run_id": run_id}).encode()
    )
    base = _base(aws, target, run_id, started, key)
    done = {
        **base,
        "finished_at": (started + timedelta(minutes=3)).isoformat(),
        "version_id": version,
        "bytes_in": 4096,
        "bytes_stored": len(BODY),
        "sha256": hashlib.sha256(BODY).hexdigest(),
        "engine": "postgresql",
        "format": "pg_dump-custom",
        "compression": "zstd",
        "duration_s": 180.0,
    }
    source = agent_event_source(AGENT)
    return Backup(
        target,
        run_id,
        started,
        key,
        version,
        eventbridge_event(source, "Backup Started", base, started),
        eventbridge_event(source, "Backup Succeeded", done, started + timedelta(minutes=3)),
    )


def failed_run(aws: Aws, started: datetime, *, target: str = "orders-0") -> dict[str, Any]:
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{target}-failed"
    key = backup_object_key(AGENT, target, run_id, started, "pgdump.zst")
    detail = {
        **_base(aws, target, run_id, started, key),
        "finished_at": (started + timedelta(minutes=1)).isoformat(),
        "stage": "dump",
        "exit_code": 1,
        "error": "pg_dump exited with status 1",
    }
    return eventbridge_event(agent_event_source(AGENT), "Backup Failed", detail, started + timedelta(minutes=1))


def make_auditor(aws: Aws, fleet: Fleet, clock: SimulatedClock) -> audit_logic.Auditor:
    return audit_logic.Auditor(
        fleet,
        aws.ledger,
        objects=S3ObjectStore(aws.client("s3")),
        notifier=SnsNotifier(aws.client("sns"), aws.topic_arn),
        config=audit_logic.AuditConfig.from_fleet(fleet, bucket=aws.bucket, kms_key_arn=aws.key_arn),
        clock=clock,
    )


def audit(auditor: audit_logic.Auditor, *events: dict[str, Any]) -> list[audit_logic.Outcome]:
    """Hand each EventBridge event to the audit's logic, as its handler does for one SQS record, when it
    was sent (the audit's clock follows the events)."""
    outcomes = []
    for event in events:
        sent = datetime.fromisoformat(event["time"])
        if sent > auditor.clock.now():
            auditor.clock.set(sent)  # type: ignore[attr-defined]
        delivery = receive(json.dumps(event))
        outcomes.append(auditor.handle(delivery.event, sender=delivery.sender))
    return outcomes


def tag_of(aws: Aws, key: str, version_id: str | None = None) -> str | None:
    location: dict[str, Any] = {"Bucket": aws.bucket, "Key": key}
    if version_id:
        location["VersionId"] = version_id
    tags = aws.session.client("s3").get_object_tagging(**location)["TagSet"]
    return next((tag["Value"] for tag in tags if tag["Key"] == RETENTION_TAG), None)


def lock_of(aws: Aws, key: str, version_id: str | None = None) -> tuple[str | None, datetime | None]:
    location: dict[str, Any] = {"Bucket": aws.bucket, "Key": key}
    if version_id:
        location["VersionId"] = version_id
    head = aws.session.client("s3").head_object(**location)
    until = head.get("ObjectLockRetainUntilDate")
    return head.get("ObjectLockMode"), until.astimezone(UTC) if until else None


def run_record(aws: Aws, backup: Backup) -> RunRecord:
    run = aws.ledger.runs.get(backup.target, backup.started_at, backup.run_id)
    assert run is not None
    return run


def expires_at(aws: Aws, backup: Backup) -> int:
    item = aws.ledger.client.get(keys.target_pk(backup.target), keys.run_sk(backup.started_at, backup.run_id))
    assert item is not None
    return int(item[keys.TTL_ATTRIBUTE])


def target_state(aws: Aws, target: str = "orders-0") -> TargetState:
    state = aws.ledger.targets.get(target)
    assert state is not None
    return state
