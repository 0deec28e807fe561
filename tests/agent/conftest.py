"""A moto server shared by the agent tests (reset before each test) and a fresh pipeline stack per test."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from backup_agent.config import AgentConfig, parse_config
from backup_contracts.jobs import Job
from backup_contracts.naming import AGENT_SOURCE_PREFIX, agent_prefix

AGENT = "demo-host"
TARGET = "app"
REGION = "us-east-1"


@dataclass
class Stack:
    bucket: str
    kms_key_arn: str
    bus: str
    queue_url: str
    dlq_url: str
    capture_url: str
    s3: Any
    sqs: Any
    events: Any
    captured: list[dict[str, Any]] = field(default_factory=list)

    def drain_events(self) -> list[dict[str, Any]]:
        """All agent events emitted so far (detail-type + detail), in arrival order."""
        while True:
            got = self.sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                return self.captured
            for message in messages:
                body = json.loads(message["Body"])
                self.captured.append({"type": body["detail-type"], "detail": body["detail"]})
                self.sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])

    def types(self) -> list[str]:
        return [e["type"] for e in self.drain_events() if e["type"] != "Agent Heartbeat"]

    def objects(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    def uploads(self) -> list[dict[str, Any]]:
        return list(self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []))

    def send_job(self, job: Job) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=job.model_dump_json())

    def visible_jobs(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    def in_flight_jobs(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def stack(aws_env: dict[str, str]) -> Stack:
    suffix = uuid.uuid4().hex[:8]
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)
    key_arn = kms.create_key(Description="backups")["KeyMetadata"]["Arn"]
    bucket = f"backups-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    bus = "backup-pipeline-bus"
    events.create_event_bus(Name=bus)
    capture_url = sqs.create_queue(QueueName=f"capture-{suffix}")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="capture", EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": AGENT_SOURCE_PREFIX}]})
    )
    events.put_targets(Rule="capture", EventBusName=bus, Targets=[{"Id": "q", "Arn": capture_arn}])
    dlq_url = sqs.create_queue(QueueName=f"jobs-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=f"backup-pipeline-{AGENT}-jobs-{suffix}",
        Attributes={
            "VisibilityTimeout": "300",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    return Stack(bucket, key_arn, bus, queue_url, dlq_url, capture_url, s3, sqs, events)


def config_yaml(stack: Stack, state_dir: Path, targets: dict[str, Any] | None = None, **extra: Any) -> str:
    data: dict[str, Any] = {
        "agent": AGENT,
        "region": REGION,
        "queue_url": stack.queue_url,
        "bus_name": stack.bus,
        "kms_key_id": stack.kms_key_arn,
        "bucket": stack.bucket,
        "state_dir": str(state_dir),
        "compression": {"level": 1, "threads": 2},
        "targets": targets or {TARGET: {"engine": "command", "dump_command": ["true"], "restore_command": ["true"]}},
        **extra,
    }
    return json.dumps(data, indent=2)  # JSON is YAML


@pytest.fixture
def agent_config(stack: Stack, tmp_path: Path) -> AgentConfig:
    return parse_config(config_yaml(stack, tmp_path / "state"))


def make_job(
    stack: Stack,
    *,
    job_id: str | None = None,
    target: str = TARGET,
    key_prefix: str | None = None,
    deadline: timedelta = timedelta(hours=2),
    **extra: Any,
) -> Job:
    now = datetime.now(UTC)
    return Job(
        job_id=job_id or f"{target}.{uuid.uuid4().hex[:10]}",
        kind="backup",
        agent=AGENT,
        target=target,
        trigger="schedule",
        issued_at=now,
        deadline=now + deadline,
        bucket=stack.bucket,
        key_prefix=key_prefix if key_prefix is not None else agent_prefix(AGENT),
        retention_class="standard",
        **extra,
    )


def agent_env(aws_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(aws_env)
    env.update(extra)
    return env
