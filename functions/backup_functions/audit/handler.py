"""Audit entry point (referenced by the CDK stack): backup_functions.audit.handler.handler.

Invoked with an SQS batch whose record bodies are EventBridge events (rule → SQS → Lambda).
Each record is handled on its own; failures are returned as ``batchItemFailures`` (Powertools
BatchProcessor), so one bad record never fails the batch. A malformed record is logged with its
reason and reported as a failure: after the queue's maxReceiveCount it lands in the DLQ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from backup_functions import settings as settings_module
from backup_functions.audit import logic
from backup_functions.clock import Clock, SystemClock
from backup_functions.envelope import MalformedEventError, parse_envelope
from backup_functions.ledger import FAILED, SUCCEEDED, UNVERIFIED, Ledger
from backup_functions.observability import (
    BACKUP_DURATION_SECONDS,
    BACKUPS_FAILED,
    BACKUPS_SUCCEEDED,
    BACKUPS_UNVERIFIED,
    BYTES_STORED,
    REJECTED_EVENTS,
    MetricUnit,
    logger,
    metrics,
    tracer,
)

# Even when every record fails, report them as item failures instead of raising: the batch never crashes.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@dataclass
class Runtime:
    auditor: logic.Auditor


_runtime: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    """Inject the runtime (tests, local pipeline); None goes back to building it from the environment."""
    global _runtime  # noqa: PLW0603 - one cached runtime per Lambda container
    _runtime = runtime


def build_runtime(clock: Clock | None = None) -> Runtime:
    env = settings_module.settings()
    fleet = settings_module.fleet(env.fleet_file)
    config = logic.AuditConfig.from_fleet(
        fleet, bucket=env.bucket_name, kms_key_arn=env.kms_key_arn, alert_topic_arn=env.alert_topic_arn
    )
    auditor = logic.Auditor(
        fleet,
        Ledger(env.ledger_table, boto3.client("dynamodb")),
        s3=boto3.client("s3"),
        sns=boto3.client("sns"),
        config=config,
        clock=clock or SystemClock(),
    )
    return Runtime(auditor)


def runtime() -> Runtime:
    global _runtime  # noqa: PLW0603
    if _runtime is None:
        _runtime = build_runtime()
    return _runtime


def _record_metrics(outcome: logic.Outcome) -> None:
    if not outcome.first_time:
        return
    if outcome.state == SUCCEEDED:
        metrics.add_metric(name=BACKUPS_SUCCEEDED, unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=BYTES_STORED, unit=MetricUnit.Bytes, value=outcome.bytes_stored)
        metrics.add_metric(name=BACKUP_DURATION_SECONDS, unit=MetricUnit.Seconds, value=outcome.duration_s)
    elif outcome.state == UNVERIFIED:
        metrics.add_metric(name=BACKUPS_UNVERIFIED, unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=BACKUPS_FAILED, unit=MetricUnit.Count, value=1)
    elif outcome.state == FAILED:
        metrics.add_metric(name=BACKUPS_FAILED, unit=MetricUnit.Count, value=1)


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> dict[str, Any]:
    try:
        event = parse_envelope(record.body)
    except MalformedEventError as exc:
        logger.error(
            "audit: malformed event rejected (it goes to the DLQ after the queue's maxReceiveCount)",
            extra={"reason": str(exc), "message_id": record.message_id},
        )
        metrics.add_metric(name=REJECTED_EVENTS, unit=MetricUnit.Count, value=1)
        raise
    ids = {name: getattr(event, name, None) for name in ("job_id", "run_id", "target", "agent")}
    logger.set_correlation_id(ids["run_id"] or ids["job_id"] or record.message_id)
    logger.append_keys(**ids, event_type=type(event).__name__, message_id=record.message_id)
    try:
        try:
            outcome = runtime().auditor.handle(event)
        except Exception:
            logger.exception("audit: event could not be processed; SQS redelivers it (then the DLQ)")
            raise
        _record_metrics(outcome)
        logger.info("audit: event handled", extra={"outcome": asdict(outcome)})
        return asdict(outcome)
    finally:
        logger.remove_keys(["job_id", "run_id", "target", "agent", "event_type", "message_id"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
