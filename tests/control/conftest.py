"""Fixtures for the control plane: moto in-process, a small fleet, a simulated clock, call counters."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from simulated_objects import date_object

from backup_contracts import ledger as keys
from backup_contracts import naming
from backup_contracts.fleet import Fleet, parse_fleet
from backup_contracts.naming import manifest_key
from backup_functions.audit import handler as audit_handler
from backup_functions.audit import logic as audit_logic
from backup_functions.dispatcher import handler as dispatcher_handler
from backup_functions.dispatcher import logic as dispatcher_logic
from backup_functions.ledger import Ledger
from backup_functions.ports import S3ObjectStore, SnsNotifier, SqsJobQueue
from local_pipeline.clock import SimulatedClock
from local_pipeline.resources import create_ledger_table

_SESSION: list[boto3.Session] = []


def shared_session() -> boto3.Session:
    """One boto3 session for every test: service models load once (a new Session re-reads them)."""
    if not _SESSION:
        _SESSION.append(boto3.Session(region_name="us-east-1"))
    return _SESSION[0]


START = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # a Monday, so ISO weeks are easy to reason about
PIPELINE = "bp-test"


@pytest.fixture(autouse=True)
def _env(aws_credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


def make_fleet(agents: dict[str, list[dict[str, Any]]], **pipeline: Any) -> Fleet:
    """A validated fleet; cached, since validation walks a year of cron slots per target (Fleet is frozen)."""
    return _parse_fleet(json.dumps({"agents": agents, "pipeline": pipeline}, sort_keys=True))


@functools.lru_cache(maxsize=64)
def _parse_fleet(spec: str) -> Fleet:
    raw = json.loads(spec)
    return parse_fleet(
        {
            "version": 1,
            "pipeline": {"name": PIPELINE, **raw["pipeline"]},
            "retention_classes": {
                "standard": {"daily_days": 14, "weekly_days": 62, "monthly_days": 400},
                "short": {"daily_days": 7},
            },
            "agents": [{"name": name, "targets": targets} for name, targets in raw["agents"].items()],
        }
    )


def daily_targets(prefix: str, count: int, **extra: Any) -> list[dict[str, Any]]:
    base = {"engine": "postgresql", "schedule": "cron(0 2 * * *)", "rpo": "26h", "retention": "standard"}
    return [{**base, **extra, "name": f"{prefix}-{i}"} for i in range(count)]


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet({"db-1": daily_targets("orders", 3), "db-2": daily_targets("shop", 2)})


@dataclass
class Aws:
    """The moto resources one test uses, with clients and an API call counter."""

    session: boto3.Session
    table: str
    bucket: str
    key_arn: str
    topic_arn: str
    inbox_url: str
    queue_prefix: str
    calls: Counter[str] = field(default_factory=Counter)
    clients: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def other_key_arn(self) -> str:
        """Someone else's KMS key (created on first use: moto generates an RSA key per KMS key)."""
        return str(self.session.client("kms").create_key(Description="someone else's")["KeyMetadata"]["Arn"])

    def client(self, service: str) -> Any:
        if service not in self.clients:
            client = self.session.client(service)
            client.meta.events.register("before-call.*.*", self._count)
            self.clients[service] = client
        return self.clients[service]

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.table, self.client("dynamodb"))

    def make_queues(self, fleet: Fleet) -> None:
        sqs = self.session.client("sqs")
        for agent in fleet.agents:
            sqs.create_queue(QueueName=naming.job_queue_name(fleet.pipeline.name, agent.name))

    def queue_messages(self, agent: str) -> list[dict[str, Any]]:
        sqs = self.session.client("sqs")
        url = self.queue_prefix + naming.job_queue_name(PIPELINE, agent)
        messages: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages", [])
            if not got:
                return messages
            messages.extend(json.loads(m["Body"]) for m in got)

    def alerts(self) -> list[dict[str, Any]]:
        """What the on-call engineer received (SNS → SQS subscription, JSON envelope)."""
        sqs = self.session.client("sqs")
        received: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10, VisibilityTimeout=600).get(
                "Messages", []
            )
            if not got:
                return received
            received.extend(json.loads(m["Body"]) for m in got)

    def put_backup_object(
        self,
        key: str,
        body: bytes,
        *,
        sha256: str | None = None,
        kms_key: str | None = None,
        sse: bool = True,
        metadata: bool = True,
        run_id: str | None = None,
        written_at: datetime | None = None,
    ) -> str | None:
        s3 = self.session.client("s3")
        extra: dict[str, Any] = {}
        if sse:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key or self.key_arn}
        object_metadata = {"sha256": sha256 or hashlib.sha256(body).hexdigest()} if metadata else {}
        if run_id is not None:
            object_metadata["run-id"] = run_id
        response = s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=object_metadata, **extra)
        if written_at is not None:
            self.written_at(key, written_at)
        return response.get("VersionId")

    def written_at(self, key: str, moment: datetime) -> None:
        """Date the object as written at ``moment`` (moto stamps real time; the tests' runs are simulated)."""
        date_object(self.bucket, key, moment)

    def put_multipart_object(
        self, key: str, parts: list[bytes], *, run_id: str | None = None, written_at: datetime | None = None
    ) -> str:
        """A multipart upload with SHA-256 part checksums, as the agent does; returns the composite checksum.

        With ``run_id`` it is the agent's whole upload: the run-id metadata, and the sidecar manifest
        with the object's size and full SHA-256, both written at ``written_at``."""
        s3 = self.session.client("s3")
        upload = s3.create_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            ChecksumAlgorithm="SHA256",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.key_arn,
            Metadata={"run-id": run_id} if run_id else {},
        )
        done = []
        digests = b""
        for number, data in enumerate(parts, 1):
            digest = hashlib.sha256(data).digest()
            digests += digest
            checksum = base64.b64encode(digest).decode()
            response = s3.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=data,
                ChecksumSHA256=checksum,
                ChecksumAlgorithm="SHA256",
            )
            done.append({"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum})
        s3.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
        )
        if run_id is not None:
            whole = b"".join(parts)
            manifest = {"run_id": run_id, "sha256": hashlib.sha256(whole).hexdigest(), "bytes_stored": len(whole)}
            s3.put_object(Bucket=self.bucket, Key=manifest_key(key), Body=json.dumps(manifest).encode())
        if written_at is not None:
            self.written_at(key, written_at)
        return base64.b64encode(hashlib.sha256(digests).digest()).decode() + f"-{len(parts)}"

    def scan(self) -> list[dict[str, Any]]:
        return sorted(self.ledger.client.scan_all(), key=lambda item: (item[keys.PK], item[keys.SK]))


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        session = shared_session()
        kms = session.client("kms")
        key_arn = kms.create_key(Description="pipeline")["KeyMetadata"]["Arn"]
        s3 = session.client("s3")
        bucket = "bp-test-backups"
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)  # as the stack's (versioned, locked)
        ddb = session.client("dynamodb")
        table = "bp-test-ledger"
        create_ledger_table(ddb, table)
        sns = session.client("sns")
        topic_arn = sns.create_topic(Name="bp-test-alerts")["TopicArn"]
        sqs = session.client("sqs")
        inbox_url = sqs.create_queue(QueueName="bp-test-alerts-inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
        yield Aws(
            session=session,
            table=table,
            bucket=bucket,
            key_arn=key_arn,
            topic_arn=topic_arn,
            inbox_url=inbox_url,
            queue_prefix=inbox_url.rsplit("/", 1)[0] + "/",
        )


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture
def dispatcher(aws: Aws, fleet: Fleet, clock: SimulatedClock) -> Iterator[dispatcher_handler.Runtime]:
    aws.make_queues(fleet)
    runtime = dispatcher_handler.Runtime(
        fleet=fleet,
        ledger=aws.ledger,
        jobs=SqsJobQueue(aws.client("sqs")),
        config=dispatcher_logic.DispatchConfig.from_fleet(fleet, bucket=aws.bucket, queue_url_prefix=aws.queue_prefix),
        clock=clock,
    )
    dispatcher_handler.configure(runtime)
    yield runtime
    dispatcher_handler.configure(None)


@pytest.fixture
def auditor(aws: Aws, fleet: Fleet, clock: SimulatedClock) -> Iterator[audit_logic.Auditor]:
    config = audit_logic.AuditConfig.from_fleet(fleet, bucket=aws.bucket, kms_key_arn=aws.key_arn)
    auditor = audit_logic.Auditor(
        fleet,
        aws.ledger,
        objects=S3ObjectStore(aws.client("s3")),
        notifier=SnsNotifier(aws.client("sns"), aws.topic_arn),
        config=config,
        clock=clock,
    )
    audit_handler.configure(audit_handler.Runtime(auditor))
    yield auditor
    audit_handler.configure(None)


def eventbridge_event(source: str, detail_type: str, detail: dict[str, Any], when: datetime = START) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def sqs_batch(bodies: list[str]) -> dict[str, Any]:
    """An SQS event as Lambda delivers it; bodies are EventBridge events as JSON text."""
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1763251200000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1763251200000",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bp-test-audit-events",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }
