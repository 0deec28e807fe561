"""The restore coordinator against in-process moto: the same resources the stack creates (provisioned
by ``local_pipeline.resources`` from a test fleet), on a simulated clock.

What people and agents see is captured the way they would see it: pipeline events through an extra
EventBridge rule → SQS queue, SNS messages through the alert inbox (an SQS subscription), jobs on the
agents' own queues.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import pytest
import zstandard
from botocore.config import Config
from moto import mock_aws

from backup_contracts import ledger as keys
from backup_contracts.events import BackupSucceeded, put_events_entry
from backup_contracts.fleet import Fleet, parse_fleet
from backup_contracts.jobs import Job
from backup_contracts.naming import SOURCE_PIPELINE, agent_event_source, backup_object_key, manifest_key
from backup_functions.ledger import Ledger
from backup_functions.ledger.client import Update
from backup_functions.ports import EventBridgePublisher, S3ObjectStore, SnsNotifier, SqsJobQueue
from backup_functions.restore.api import ApprovalsApi, Reply
from backup_functions.restore.logic import Coordinator, CoordinatorConfig, Outcome
from backup_functions.restore.wal_index import S3IndexObjects
from local_pipeline.approvals_url import function_url_event
from local_pipeline.clock import SimulatedClock
from local_pipeline.resources import LocalResources, provision

REGION = "us-east-1"
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"  # callers of the approvals URL, as its IAM auth names them
BOB = "arn:aws:iam::123456789012:user/bob"
CAROL = "arn:aws:sts::123456789012:assumed-role/Developer/carol"  # may call the URL, approves nothing

FLEET: dict[str, Any] = {
    "version": 1,
    "pipeline": {"name": "rt", "approval_timeout_minutes": 30, "job_deadline_minutes": 60, "approvers": [ALICE, BOB]},
    "retention_classes": {"standard": {"daily_days": 14}, "short": {"daily_days": 7}},
    "agents": [
        {
            "name": "db-host",
            "targets": [
                {
                    "name": "app",
                    "engine": "sqlite",
                    "schedule": "rate(1 day)",
                    "rpo": "26h",
                    "rto": "30m",
                    "restore_to": ["app-clone", "app-staging"],
                    "drill": {"schedule": "rate(7 days)", "destination": "app-drill"},
                },
                {"name": "app-clone", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "2d", "retention": "short"},
                {"name": "app-drill", "engine": "sqlite", "schedule": "rate(7 days)", "rpo": "8d"},
                {"name": "app-other", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "2d"},
                {
                    "name": "orders",
                    "engine": "postgresql",
                    "schedule": "rate(6 hours)",
                    "rpo": "7h",
                    "protected": True,
                    "restore_to": ["orders-copy"],
                },
                {"name": "orders-copy", "engine": "postgresql", "schedule": "rate(1 day)", "rpo": "26h"},
                {"name": "shop", "engine": "mariadb", "schedule": "rate(1 day)", "rpo": "26h"},
            ],
        },
        {
            "name": "staging-host",
            "targets": [
                {
                    "name": "app-staging",
                    "engine": "sqlite",
                    "schedule": "rate(1 day)",
                    "rpo": "2d",
                    "protected": True,
                },
            ],
        },
    ],
}


def restore_fleet() -> Fleet:
    return parse_fleet(json.loads(json.dumps(FLEET)))


@dataclass
class Received:
    subject: str
    body: str
    attributes: dict[str, str]

    @property
    def facts(self) -> dict[str, Any]:
        return json.loads(self.attributes.get("alert", "{}"))


@dataclass
class Backup:
    target: str
    agent: str
    run_id: str
    started_at: datetime
    key: str
    version_id: str | None
    sha256: str
    bytes_stored: int
    payload: bytes
    event: BackupSucceeded


@dataclass
class World:
    fleet: Fleet
    resources: LocalResources
    session: boto3.Session
    clock: SimulatedClock
    coordinator: Coordinator
    ledger: Ledger
    capture_url: str
    s3: Any
    sqs: Any
    captured: list[dict[str, Any]] = field(default_factory=list)

    # ------------------------------------------------------------------ inputs
    def tamper_run(self, target: str, started_at: datetime, run_id: str, **attributes: Any) -> None:
        """Change what the ledger says about a run, behind the audit's back."""
        self.ledger.client.update(keys.target_pk(target), keys.run_sk(started_at, run_id), Update().set(**attributes))

    def envelope(self, source: str, detail_type: str, detail: dict[str, Any]) -> str:
        return json.dumps(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "source": source,
                "detail-type": detail_type,
                "account": self.resources.account,
                "time": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": REGION,
                "resources": [],
                "detail": detail,
            }
        )

    def request(self, **fields: Any) -> Outcome:
        detail = {
            "restore_id": fields.pop("restore_id", f"r-{uuid.uuid4().hex[:10]}"),
            "requested_by": "alice@example.com",
            "reason": "test restore",
            **fields,
        }
        return self.coordinator.handle(self.envelope("backup.requests", "Restore Requested", detail))

    def url(self, path: str, body: dict[str, Any] | str, caller: str | None) -> Reply:
        """A call to the approvals URL as the function receives it, ``caller`` authenticated by AWS."""
        text = body if isinstance(body, str) else json.dumps(body, default=str)
        event = function_url_event(
            method="POST", path=path, body=text, caller_arn=caller, account=self.resources.account, region=REGION
        )
        return ApprovalsApi(self.coordinator).handle(event)

    def submit(self, caller: str = ALICE, **fields: Any) -> Reply:
        """A Restore Requested through the approvals URL (``backupctl restore`` with an approvals URL)."""
        detail = {
            "restore_id": fields.pop("restore_id", f"r-{uuid.uuid4().hex[:10]}"),
            "reason": "test restore",
            **fields,
        }
        return self.url("/restores", detail, caller)

    def approve(self, restore_id: str, by: str = BOB) -> Reply:
        """An approval through the approvals URL (``backupctl approve``) by ``by``, authenticated by AWS."""
        return self.url("/approvals", {"restore_id": restore_id}, by)

    def bus_approval(self, restore_id: str, by: str = "bob@example.com") -> Outcome:
        """A Restore Approved put on the bus, the way approvals were once sent."""
        detail = {"restore_id": restore_id, "approved_by": by}
        return self.coordinator.handle(self.envelope("backup.requests", "Restore Approved", detail))

    def report(self, restore_id: str, **extra: Any) -> dict[str, Any]:
        """The fields an agent's Restore Started/Succeeded/Failed carries about the job stored at dispatch
        (what ``backup_agent.restore.RestoreRun`` sends), with ``extra`` on top."""
        item = self.ledger.restores.get(restore_id)
        assert item is not None
        assert item.job, f"restore {restore_id} has no dispatched job"
        job = Job.model_validate_json(item.job)
        assert job.source is not None
        return {
            "restore_id": restore_id,
            "job_id": job.job_id,
            "agent": job.agent,
            "source_target": job.source.target,
            "source_run_id": job.source.run_id,
            "destination": job.destination,
            "mode": job.mode,
            "started_at": keys.iso(self.clock.now()),
            **extra,
        }

    def agent_event(self, detail_type: str, detail: dict[str, Any], *, source: str | None = None) -> Outcome:
        """An agent's event as EventBridge delivers it: from the source of the agent it names, unless
        ``source`` says who really sent it."""
        source = source or agent_event_source(str(detail["agent"]))
        return self.coordinator.handle(self.envelope(source, detail_type, json.loads(json.dumps(detail, default=str))))

    # ------------------------------------------------------------------ backups
    def seed_backup(
        self,
        target: str,
        *,
        started: datetime,
        state: str = "succeeded",
        payload: bytes | None = None,
        run_id: str | None = None,
    ) -> Backup:
        """A backup as the agent + audit leave it: a zstd object (with the agent's metadata), its
        manifest, and the run record in the ledger."""
        agent, target_cfg = self.fleet.target(target)
        run_id = run_id or f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"
        raw = payload if payload is not None else f"data of {target} at {started.isoformat()}".encode() * 50
        stored = zstandard.ZstdCompressor(level=1, write_checksum=True).compress(raw)
        sha = hashlib.sha256(stored).hexdigest()
        key = backup_object_key(agent.name, target, run_id, started, "sqlite.zst")
        response = self.s3.put_object(
            Bucket=self.resources.bucket,
            Key=key,
            Body=stored,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.resources.kms_key_arn,
            Metadata={"engine": target_cfg.engine, "format": "test", "compression": "zstd-1", "run-id": run_id},
        )
        manifest = {"sha256": sha, "bytes_stored": len(stored), "bytes_in": len(raw), "validator": {"tables": 3}}
        self.s3.put_object(Bucket=self.resources.bucket, Key=manifest_key(key), Body=json.dumps(manifest).encode())
        event = BackupSucceeded(
            job_id=f"{target}.{started:%Y%m%dT%H%M%SZ}",
            run_id=run_id,
            target=target,
            agent=agent.name,
            started_at=started,
            bucket=self.resources.bucket,
            key=key,
            finished_at=started + timedelta(seconds=30),
            version_id=response.get("VersionId"),
            bytes_in=len(raw),
            bytes_stored=len(stored),
            sha256=sha,
            engine=target_cfg.engine,
            format="test",
            compression="zstd-1",
            duration_s=30.0,
        )
        self.ledger.runs.ended(event, state, expires_at=started + timedelta(days=30))
        return Backup(target, agent.name, run_id, started, key, response.get("VersionId"), sha, len(stored), raw, event)

    # ------------------------------------------------------------------ outputs
    def pipeline_events(self) -> list[dict[str, Any]]:
        """Events the coordinator put on the bus (source backup.pipeline), in arrival order."""
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.capture_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return self.captured
            for message in messages:
                body = json.loads(message["Body"])
                self.captured.append({"type": body["detail-type"], "detail": body["detail"]})
                self.sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])

    def alerts(self) -> list[Received]:
        received: list[Received] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.resources.alerts_inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return received
            for message in messages:
                envelope = json.loads(message["Body"])
                received.append(
                    Received(
                        envelope.get("Subject", ""),
                        envelope.get("Message", ""),
                        {k: v.get("Value") for k, v in envelope.get("MessageAttributes", {}).items()},
                    )
                )
                self.sqs.delete_message(
                    QueueUrl=self.resources.alerts_inbox_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def jobs(self, agent: str) -> list[Job]:
        """Jobs on an agent's queue (consumed)."""
        found: list[Job] = []
        url = self.resources.agent_queue_urls[agent]
        while True:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                return found
            for message in messages:
                found.append(Job.model_validate_json(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def all_jobs(self) -> list[Job]:
        return [job for agent in self.resources.agent_queue_urls for job in self.jobs(agent)]

    def item(self, restore_id: str) -> dict[str, Any] | None:
        """The request's ledger item as it is stored."""
        return self.ledger.client.get(keys.restore_pk(restore_id), keys.STATE_SK)

    def put_event(self, entry_event: Any) -> None:
        self.session.client("events").put_events(Entries=[put_events_entry(entry_event, self.resources.bus_name)])


def capture_pipeline_events(session: boto3.Session, bus_name: str) -> str:
    """A queue that receives every event the functions put on the bus (source ``backup.pipeline``): its URL."""
    sqs, events = session.client("sqs"), session.client("events")
    capture_url = sqs.create_queue(QueueName="captured-pipeline-events")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="capture-pipeline",
        EventBusName=bus_name,
        EventPattern=json.dumps({"source": [SOURCE_PIPELINE]}),
        State="ENABLED",
    )
    events.put_targets(Rule="capture-pipeline", EventBusName=bus_name, Targets=[{"Id": "q", "Arn": capture_arn}])
    return capture_url


WorldType = TypeVar("WorldType", bound=World)


@contextmanager
def restore_world(fleet: Fleet, kind: type[WorldType]) -> Iterator[WorldType]:
    """The coordinator on moto resources provisioned for ``fleet`` and a simulated clock."""
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        resources = provision(fleet, session)
        sqs, events = session.client("sqs"), session.client("events")
        capture_url = capture_pipeline_events(session, resources.bus_name)
        clock = SimulatedClock(T0)
        ledger = Ledger(resources.ledger_table, session.client("dynamodb"))
        s3 = session.client("s3", config=Config(signature_version="s3v4"))
        coordinator = Coordinator(
            fleet,
            ledger,
            objects=S3ObjectStore(s3),
            indexes=S3IndexObjects(s3),
            jobs=SqsJobQueue(sqs),
            events=EventBridgePublisher(events, resources.bus_name),
            notifier=SnsNotifier(session.client("sns"), resources.alert_topic_arn),
            config=CoordinatorConfig.from_fleet(
                fleet,
                bus_name=resources.bus_name,
                bucket=resources.bucket,
                queue_url_prefix=resources.job_queue_url_prefix,
            ),
            clock=clock,
        )
        yield kind(fleet, resources, session, clock, coordinator, ledger, capture_url, s3, sqs)


@pytest.fixture
def world(aws_credentials: dict[str, str]) -> Iterator[World]:
    with restore_world(restore_fleet(), World) as made:
        yield made


# agent-side fixtures (moto server, real databases) live in agent_world.py
from .agent_world import agent_world, mariadb_server, postgres_server  # noqa: E402, F401
