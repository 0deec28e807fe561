"""Create, in a moto server, the resources the CDK stack creates — from the same fleet file and the
same shared names, rule patterns and queue settings (backup_contracts), so the local run exercises
the deployed shape rather than a look-alike."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3

from backup_contracts import ledger, naming
from backup_contracts.environment import (
    POWERTOOLS_LOG_LEVEL,
    POWERTOOLS_METRICS_NAMESPACE,
    POWERTOOLS_SERVICE_NAME,
    FunctionEnvironment,
    metrics_namespace,
)
from backup_contracts.events import AUDIT_PATTERN, BACKUP_REQUEST_PATTERN, RESTORE_PATTERN, SILENCE_PATTERN
from backup_contracts.fleet import Fleet
from local_pipeline.replication import LocalVault, create_vault, encrypt_by_default


@dataclass
class LocalResources:
    """What a local pipeline has: the same names the stack outputs."""

    pipeline: str
    region: str
    account: str
    kms_key_arn: str
    bucket: str
    ledger_table: str
    bus_name: str
    alert_topic_arn: str
    job_queue_url_prefix: str
    agent_queue_urls: dict[str, str] = field(default_factory=dict)
    agent_dlq_urls: dict[str, str] = field(default_factory=dict)
    audit_queue_url: str = ""
    restore_queue_url: str = ""
    silence_queue_url: str = ""
    backup_request_queue_url: str = ""
    alerts_inbox_url: str = ""  # an SQS subscription to the alert topic: what the on-call engineer receives
    vault: LocalVault | None = None  # the off-site vault (pipeline.offsite), in its own region

    def function_environment(self, fleet_file: str) -> dict[str, str]:
        """The Lambdas' environment, as the stack sets it (``backup_contracts.environment``)."""
        return {
            **FunctionEnvironment(
                ledger_table=self.ledger_table,
                bus_name=self.bus_name,
                bucket_name=self.bucket,
                alert_topic_arn=self.alert_topic_arn,
                kms_key_arn=self.kms_key_arn,
                job_queue_url_prefix=self.job_queue_url_prefix,
                fleet_file=fleet_file,
            ).variables(),
            POWERTOOLS_SERVICE_NAME: self.pipeline,
            POWERTOOLS_METRICS_NAMESPACE: metrics_namespace(self.pipeline),
            "POWERTOOLS_TRACE_DISABLED": "true",
            # Locally the handlers' JSON logs and metric documents would drown what a person reads;
            # failures still surface as exceptions and rejected batch items.
            POWERTOOLS_LOG_LEVEL: "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _queue_with_dlq(
    sqs: Any, name: str, dlq_name: str, *, visibility_s: int, max_receive: int, retention_s: int, key_arn: str
) -> tuple[str, str, str]:
    encryption = {"KmsMasterKeyId": key_arn}
    dlq_url, dlq_arn = _queue(sqs, dlq_name, {**encryption, "MessageRetentionPeriod": str(naming.DLQ_RETENTION_S)})
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
    url, arn = _queue(
        sqs,
        name,
        {
            **encryption,
            "VisibilityTimeout": str(visibility_s),
            "MessageRetentionPeriod": str(retention_s),
            "RedrivePolicy": redrive,
        },
    )
    return url, arn, dlq_url


def _route(events: Any, bus: str, rule: str, pattern: dict[str, Any], queue_arn: str) -> None:
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])


def create_ledger_table(dynamodb: Any, table: str, *, kms_key_arn: str | None = None) -> None:
    """The ledger as the stack defines it (keys, deadline index, TTL) — for the local pipeline and tests."""
    encryption = {"SSESpecification": {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": kms_key_arn}}
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in (ledger.PK, ledger.SK, ledger.WATCH_SHARD, ledger.WATCH_DEADLINE)
        ],
        KeySchema=[{"AttributeName": ledger.PK, "KeyType": "HASH"}, {"AttributeName": ledger.SK, "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": ledger.WATCH_INDEX,
                "KeySchema": [
                    {"AttributeName": ledger.WATCH_SHARD, "KeyType": "HASH"},
                    {"AttributeName": ledger.WATCH_DEADLINE, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        **(encryption if kms_key_arn else {}),
    )
    dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ledger.TTL_ATTRIBUTE}
    )


def provision(fleet: Fleet, session: boto3.Session) -> LocalResources:
    pipeline = fleet.pipeline.name
    region = session.region_name or "us-east-1"
    account = session.client("sts").get_caller_identity()["Account"]
    kms, s3, dynamodb = session.client("kms"), session.client("s3"), session.client("dynamodb")
    sqs, events, sns = session.client("sqs"), session.client("events"), session.client("sns")

    key_arn = kms.create_key(Description=f"{pipeline} backups")["KeyMetadata"]["Arn"]
    kms.enable_key_rotation(KeyId=key_arn)

    bucket = f"{pipeline}-backups-{account}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=fleet.pipeline.object_lock.enabled)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    encrypt_by_default(s3, bucket, key_arn)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )

    table = naming.ledger_table_name(pipeline)
    create_ledger_table(dynamodb, table, kms_key_arn=key_arn)

    bus = naming.event_bus_name(pipeline)
    events.create_event_bus(Name=bus)
    topic_arn = sns.create_topic(Name=naming.alert_topic_name(pipeline), Attributes={"KmsMasterKeyId": key_arn})[
        "TopicArn"
    ]

    resources = LocalResources(
        pipeline=pipeline,
        region=region,
        account=account,
        kms_key_arn=key_arn,
        bucket=bucket,
        ledger_table=table,
        bus_name=bus,
        alert_topic_arn=topic_arn,
        job_queue_url_prefix="",
    )
    for agent in fleet.agents:
        url, _, dlq_url = _queue_with_dlq(
            sqs,
            naming.job_queue_name(pipeline, agent.name),
            naming.job_dlq_name(pipeline, agent.name),
            visibility_s=naming.JOB_QUEUE_VISIBILITY_TIMEOUT_S,
            max_receive=naming.JOB_QUEUE_MAX_RECEIVE_COUNT,
            retention_s=naming.JOB_QUEUE_RETENTION_S,
            key_arn=key_arn,
        )
        resources.agent_queue_urls[agent.name] = url
        resources.agent_dlq_urls[agent.name] = dlq_url
    first_url = next(iter(resources.agent_queue_urls.values()))
    resources.job_queue_url_prefix = first_url.rsplit("/", 1)[0] + "/"

    # Event-driven functions: rule → SQS (+DLQ) → handler, exactly as in the stack. On-demand backup
    # requests go to the dispatcher directly in the stack; locally they wait in a queue for the runner.
    for attr, name, rule, pattern in (
        ("audit_queue_url", naming.audit_events_queue_name(pipeline), "audit", AUDIT_PATTERN),
        ("restore_queue_url", naming.restore_events_queue_name(pipeline), "restore", RESTORE_PATTERN),
        ("silence_queue_url", naming.silence_events_queue_name(pipeline), "silences", SILENCE_PATTERN),
        ("backup_request_queue_url", f"{pipeline}-backup-requests", "backup-requests", BACKUP_REQUEST_PATTERN),
    ):
        url, arn, _ = _queue_with_dlq(
            sqs,
            name,
            naming.events_dlq_name(name),
            visibility_s=naming.EVENTS_QUEUE_VISIBILITY_TIMEOUT_S,
            max_receive=naming.EVENTS_QUEUE_MAX_RECEIVE_COUNT,
            retention_s=naming.JOB_QUEUE_RETENTION_S,
            key_arn=key_arn,
        )
        setattr(resources, attr, url)
        _route(events, bus, f"{pipeline}-{rule}", pattern, arn)

    inbox_url, inbox_arn = _queue(sqs, f"{pipeline}-alerts-inbox", {})
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "false"})
    resources.alerts_inbox_url = inbox_url
    resources.vault = create_vault(session, fleet)
    return resources
