"""Restore coordinator entry point (referenced by the CDK stack): backup_functions.restore.handler.handler.

Three kinds of invocation:

- an SQS batch (rule with ``RESTORE_PATTERN`` → SQS → Lambda) whose record bodies are EventBridge
  events: Restore Requested / Approved from people, Restore Started / Succeeded / Failed from
  agents. Each record is handled on its own (``runtime.handle_sqs_batch``);
- a scheduled EventBridge event (``detail-type: Scheduled Event``, rule → Lambda directly): the
  restore tick — due drills dispatched, expired approvals rejected, silent restores failed;
- a request to the function's URL (``AuthType AWS_IAM``; ``api``): restore requests and approvals
  whose caller AWS authenticated, answered synchronously.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

from backup_functions import settings as settings_module
from backup_functions.clock import Clock, SystemClock
from backup_functions.ledger import Ledger
from backup_functions.observability import (
    DRILL_RTO_SECONDS,
    DRILLS_FAILED,
    DRILLS_SUCCEEDED,
    RESTORES_DISPATCHED,
    RESTORES_FAILED,
    RESTORES_REJECTED,
    RESTORES_SUCCEEDED,
    MetricUnit,
    count,
    logger,
)
from backup_functions.offsite.objects import with_vault
from backup_functions.ports import EventBridgePublisher, S3ObjectStore, SnsNotifier, SqsJobQueue
from backup_functions.restore import logic
from backup_functions.restore.api import ApprovalsApi, is_function_url_event
from backup_functions.restore.wal_index import S3IndexObjects
from backup_functions.runtime import Lazy, handle_sqs_batch, lambda_handler


@dataclass
class Runtime:
    coordinator: logic.Coordinator


def build_runtime(*, clock: Clock | None = None) -> Runtime:
    env = settings_module.settings()
    fleet = settings_module.fleet(env.fleet_file)
    s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
    coordinator = logic.Coordinator(
        fleet,
        Ledger(env.ledger_table, boto3.client("dynamodb")),
        # SSE-KMS objects need SigV4 signatures, also on presigned URLs
        objects=with_vault(S3ObjectStore(s3), fleet),
        indexes=S3IndexObjects(s3),
        jobs=SqsJobQueue(boto3.client("sqs")),
        events=EventBridgePublisher(boto3.client("events"), env.bus_name),
        notifier=SnsNotifier(boto3.client("sns"), env.alert_topic_arn, env.chat_topic_arn),
        config=logic.CoordinatorConfig.from_fleet(
            fleet, bus_name=env.bus_name, bucket=env.bucket_name, queue_url_prefix=env.job_queue_url_prefix
        ),
        clock=clock or SystemClock(),
    )
    return Runtime(coordinator)


runtime = Lazy(build_runtime)
configure = runtime.configure


def _record_metrics(outcome: logic.Outcome) -> None:
    names = {
        "rejected": RESTORES_REJECTED,
        "dispatched": None if outcome.drill else RESTORES_DISPATCHED,
        "succeeded": DRILLS_SUCCEEDED if outcome.drill else RESTORES_SUCCEEDED,
        "failed": DRILLS_FAILED if outcome.drill else RESTORES_FAILED,
    }
    name = names.get(outcome.action)
    if name:
        count(name)
    if outcome.drill and outcome.action == "succeeded" and outcome.duration_s is not None:
        count(DRILL_RTO_SECONDS, outcome.duration_s, MetricUnit.Seconds)


def handle_record(record: SQSRecord) -> dict[str, Any]:
    outcome = runtime.get().coordinator.handle(record.body)
    _record_metrics(outcome)
    logger.info("restore: event handled", extra={"outcome": asdict(outcome)})
    return asdict(outcome)


def handle_url_request(event: dict[str, Any]) -> dict[str, Any]:
    reply = ApprovalsApi(runtime.get().coordinator).handle(event)
    if reply.answer.restore_id:
        logger.set_correlation_id(reply.answer.restore_id)
    if reply.outcome is not None:
        _record_metrics(reply.outcome)
    logger.info("restore: approvals URL answered", extra={"status": reply.status, "answer": reply.answer.model_dump()})
    return reply.response()


def is_scheduled(event: dict[str, Any]) -> bool:
    return event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events"


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_scheduled(event):
        logger.set_correlation_id(f"restore-tick-{event.get('time', '')}")
        report = runtime.get().coordinator.tick()
        for _ in report.drills_failed:
            count(DRILLS_FAILED)
        logger.info("restore tick", extra={"report": asdict(report)})
        return asdict(report)
    if is_function_url_event(event):
        return handle_url_request(event)
    return handle_sqs_batch(event, context, function="restore", handle=handle_record)
