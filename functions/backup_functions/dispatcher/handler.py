"""Dispatcher entry point (referenced by the CDK stack): backup_functions.dispatcher.handler.handler.

Invoked by the EventBridge schedule (``Scheduled Event``) and, as a direct EventBridge target, by
``Backup Requested`` events from the pipeline's bus. Logic lives in ``logic.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import boto3
from pydantic import ValidationError

from backup_contracts.events import BackupRequested, DetailType
from backup_contracts.fleet import Fleet
from backup_contracts.naming import SOURCE_REQUESTS
from backup_contracts.validation import describe_validation_error
from backup_functions import settings as settings_module
from backup_functions.clock import Clock, SystemClock
from backup_functions.dispatcher import logic
from backup_functions.ledger import Ledger
from backup_functions.observability import (
    JOBS_DISPATCHED,
    JOBS_NOT_SENT,
    REJECTED_EVENTS,
    MetricUnit,
    logger,
    metrics,
    tracer,
)


@dataclass
class Runtime:
    fleet: Fleet
    ledger: Ledger
    sqs: Any
    config: logic.DispatchConfig
    clock: Clock


_runtime: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    """Inject the runtime (tests, local pipeline); None goes back to building it from the environment."""
    global _runtime  # noqa: PLW0603 - one cached runtime per Lambda container
    _runtime = runtime


def runtime() -> Runtime:
    global _runtime  # noqa: PLW0603
    if _runtime is None:
        env = settings_module.settings()
        fleet = settings_module.fleet(env.fleet_file)
        _runtime = Runtime(
            fleet=fleet,
            ledger=Ledger(env.ledger_table, boto3.client("dynamodb")),
            sqs=boto3.client("sqs"),
            config=logic.DispatchConfig.from_fleet(
                fleet, bucket=env.bucket_name, queue_url_prefix=env.job_queue_url_prefix
            ),
            clock=SystemClock(),
        )
    return _runtime


def is_backup_request(event: dict[str, Any]) -> bool:
    return event.get("source") == SOURCE_REQUESTS and event.get("detail-type") == DetailType.BACKUP_REQUESTED


def _handle_request(rt: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    try:
        req = BackupRequested.model_validate(event.get("detail"))
    except ValidationError as exc:
        reason = describe_validation_error(exc)
        logger.error(
            "Backup Requested rejected: malformed detail", extra={"reason": reason, "event_id": event.get("id")}
        )
        metrics.add_metric(name=REJECTED_EVENTS, unit=MetricUnit.Count, value=1)
        return {"status": "rejected", "reason": f"malformed Backup Requested: {reason}"}
    logger.set_correlation_id(req.request_id)
    logger.append_keys(target=req.target, requested_by=req.requested_by)
    result = logic.request(rt.fleet, rt.ledger, rt.sqs, rt.config, now=rt.clock.now(), req=req)
    if result.status == "rejected":
        logger.error("Backup Requested rejected", extra={"reason": result.reason})
        metrics.add_metric(name=REJECTED_EVENTS, unit=MetricUnit.Count, value=1)
    else:
        logger.info("Backup Requested handled", extra={"status": result.status, "job_id": result.job_id})
        if result.status == "dispatched":
            metrics.add_metric(name=JOBS_DISPATCHED, unit=MetricUnit.Count, value=1)
        if result.status == "not-sent":
            metrics.add_metric(name=JOBS_NOT_SENT, unit=MetricUnit.Count, value=1)
    return asdict(result)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    rt = runtime()
    if is_backup_request(event):
        return _handle_request(rt, event)
    if event.get("detail-type") != "Scheduled Event":
        logger.warning(
            "dispatcher invoked with an unexpected event; running a scheduled tick",
            extra={"source": event.get("source"), "detail_type": event.get("detail-type")},
        )
    now = rt.clock.now()
    logger.set_correlation_id(f"tick-{now:%Y%m%dT%H%M%SZ}")
    result = logic.tick(rt.fleet, rt.ledger, rt.sqs, rt.config, now)
    metrics.add_metric(name=JOBS_DISPATCHED, unit=MetricUnit.Count, value=result.sent + result.resent)
    metrics.add_metric(name=JOBS_NOT_SENT, unit=MetricUnit.Count, value=len(result.not_sent))
    logger.info("dispatcher tick", extra={"tick": asdict(result)})
    return asdict(result)
