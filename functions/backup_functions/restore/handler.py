"""Restore coordinator entry point (referenced by the CDK stack): backup_functions.restore.handler.handler.

Two kinds of invocation:

- an SQS batch (rule with ``RESTORE_PATTERN`` → SQS → Lambda) whose record bodies are EventBridge
  events: Restore Requested / Approved from people, Restore Started / Succeeded / Failed from
  agents. Each record is handled on its own (Powertools BatchProcessor); a malformed record is
  logged with its reason and reported as a batch item failure, so it lands in the DLQ after the
  queue's maxReceiveCount, and never fails the batch;
- a scheduled EventBridge event (``detail-type: Scheduled Event``, rule → Lambda directly): the
  restore tick — due drills dispatched, expired approvals rejected, silent restores failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

from backup_functions import settings as settings_module
from backup_functions.clock import Clock, SystemClock
from backup_functions.ledger import Ledger
from backup_functions.observability import REJECTED_EVENTS, MetricUnit, logger, metrics, tracer
from backup_functions.restore import logic
from backup_functions.restore.ports import EventBridgePublisher, S3ObjectStore, SnsNotifier, SqsJobQueue
from backup_functions.restore.store import RestoreStore

processor = BatchProcessor(event_type=EventType.SQS)

# metric names (dashboard / alarms may refer to these)
RESTORES_REJECTED = "RestoresRejected"
RESTORES_DISPATCHED = "RestoresDispatched"
RESTORES_SUCCEEDED = "RestoresSucceeded"
RESTORES_FAILED = "RestoresFailed"
DRILLS_SUCCEEDED = "DrillsSucceeded"
DRILLS_FAILED = "DrillsFailed"
DRILL_RTO_SECONDS = "DrillRtoSeconds"


@dataclass
class Runtime:
    coordinator: logic.Coordinator


_runtime: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    """Inject the runtime (tests, local pipeline); None goes back to building it from the environment."""
    global _runtime  # noqa: PLW0603 - one cached runtime per Lambda container
    _runtime = runtime


def build_runtime(clock: Clock | None = None, session: boto3.Session | None = None) -> Runtime:
    env = settings_module.settings()
    fleet = settings_module.fleet(env.fleet_file)
    session = session or boto3.Session()
    config = logic.CoordinatorConfig.from_fleet(
        fleet, bus_name=env.bus_name, bucket=env.bucket_name, queue_url_prefix=env.job_queue_url_prefix
    )
    coordinator = logic.Coordinator(
        fleet,
        RestoreStore(Ledger(env.ledger_table, session.client("dynamodb"))),
        # SSE-KMS objects need SigV4 signatures, also on presigned URLs
        objects=S3ObjectStore(session.client("s3", config=Config(signature_version="s3v4"))),
        jobs=SqsJobQueue(session.client("sqs")),
        events=EventBridgePublisher(session.client("events"), env.bus_name),
        notifier=SnsNotifier(session.client("sns"), env.alert_topic_arn),
        config=config,
        clock=clock or SystemClock(),
    )
    return Runtime(coordinator)


def runtime() -> Runtime:
    global _runtime  # noqa: PLW0603
    if _runtime is None:
        _runtime = build_runtime()
    return _runtime


def _record_metrics(outcome: logic.Outcome) -> None:
    names = {
        "rejected": RESTORES_REJECTED,
        "dispatched": None if outcome.drill else RESTORES_DISPATCHED,
        "succeeded": DRILLS_SUCCEEDED if outcome.drill else RESTORES_SUCCEEDED,
        "failed": DRILLS_FAILED if outcome.drill else RESTORES_FAILED,
    }
    name = names.get(outcome.action)
    if name:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if outcome.drill and outcome.action == "succeeded" and outcome.duration_s is not None:
        metrics.add_metric(name=DRILL_RTO_SECONDS, unit=MetricUnit.Seconds, value=outcome.duration_s)


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> dict[str, Any]:
    try:
        outcome = runtime().coordinator.handle(record.body)
    except logic.MalformedEventError as exc:
        logger.error(
            "restore: malformed event rejected (it goes to the DLQ after the queue's maxReceiveCount)",
            extra={"reason": str(exc), "message_id": record.message_id},
        )
        metrics.add_metric(name=REJECTED_EVENTS, unit=MetricUnit.Count, value=1)
        raise
    logger.set_correlation_id(outcome.restore_id or record.message_id)
    _record_metrics(outcome)
    logger.info("restore: event handled", extra={"outcome": asdict(outcome), "message_id": record.message_id})
    return asdict(outcome)


def is_scheduled(event: dict[str, Any]) -> bool:
    return event.get("detail-type") == "Scheduled Event" and event.get("source") == "aws.events"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if is_scheduled(event):
        report = runtime().coordinator.tick()
        for _ in report.drills_failed:
            metrics.add_metric(name=DRILLS_FAILED, unit=MetricUnit.Count, value=1)
        logger.info("restore tick", extra={"report": asdict(report)})
        return asdict(report)
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
