"""Audit entry point (referenced by the CDK stack): backup_functions.audit.handler.handler.

Invoked with an SQS batch whose record bodies are EventBridge events (rule → SQS → Lambda); each
record is handled on its own (``runtime.handle_sqs_batch``). The logic lives in ``logic.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

from backup_functions import settings as settings_module
from backup_functions.audit import logic
from backup_functions.clock import Clock, SystemClock
from backup_functions.envelope import receive
from backup_functions.ledger import FAILED, SUCCEEDED, UNVERIFIED, Ledger
from backup_functions.observability import (
    BACKUP_DURATION_SECONDS,
    BACKUPS_FAILED,
    BACKUPS_SUCCEEDED,
    BACKUPS_UNVERIFIED,
    BYTES_STORED,
    REJECTED_EVENTS,
    WAL_BYTES_STORED,
    WAL_FILES_ARCHIVED,
    MetricUnit,
    count,
    logger,
)
from backup_functions.ports import S3ObjectStore, SnsNotifier
from backup_functions.runtime import Lazy, handle_sqs_batch, lambda_handler


@dataclass
class Runtime:
    auditor: logic.Auditor


def build_runtime(*, clock: Clock | None = None) -> Runtime:
    env = settings_module.settings()
    fleet = settings_module.fleet(env.fleet_file)
    auditor = logic.Auditor(
        fleet,
        Ledger(env.ledger_table, boto3.client("dynamodb")),
        objects=S3ObjectStore(boto3.client("s3", config=Config(signature_version="s3v4"))),
        notifier=SnsNotifier(boto3.client("sns"), env.alert_topic_arn, env.chat_topic_arn),
        config=logic.AuditConfig.from_fleet(fleet, bucket=env.bucket_name, kms_key_arn=env.kms_key_arn),
        clock=clock or SystemClock(),
    )
    return Runtime(auditor)


runtime = Lazy(build_runtime)
configure = runtime.configure


def _record_metrics(outcome: logic.Outcome) -> None:
    if not outcome.first_time:
        return
    if outcome.event == "WalArchived":
        count(WAL_FILES_ARCHIVED)
        count(WAL_BYTES_STORED, outcome.bytes_stored, MetricUnit.Bytes)
        return
    if outcome.state == SUCCEEDED:
        count(BACKUPS_SUCCEEDED)
        count(BYTES_STORED, outcome.bytes_stored, MetricUnit.Bytes)
        count(BACKUP_DURATION_SECONDS, outcome.duration_s, MetricUnit.Seconds)
    elif outcome.state == UNVERIFIED:
        count(BACKUPS_UNVERIFIED)
        count(BACKUPS_FAILED)
    elif outcome.state == FAILED:
        count(BACKUPS_FAILED)


def handle_record(record: SQSRecord) -> dict[str, Any]:
    delivery = receive(record.body)
    event = delivery.event
    ids = {name: getattr(event, name, None) for name in ("job_id", "run_id", "target", "agent")}
    logger.append_keys(**ids, event_type=type(event).__name__, sender=delivery.sender)
    try:
        outcome = runtime.get().auditor.handle(event, sender=delivery.sender)
        if outcome.refused:
            logger.error("audit: event refused; nothing recorded", extra={"reason": outcome.note})
            count(REJECTED_EVENTS)
        _record_metrics(outcome)
        logger.info("audit: event handled", extra={"outcome": asdict(outcome)})
        return asdict(outcome)
    finally:
        logger.remove_keys([*ids, "event_type", "sender"])


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_sqs_batch(event, context, function="audit", handle=handle_record)
