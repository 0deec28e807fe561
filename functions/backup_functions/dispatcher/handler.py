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
from backup_functions.observability import JOBS_DISPATCHED, JOBS_NOT_SENT, REJECTED_EVENTS, count, logger
from backup_functions.ports import JobQueue, SqsJobQueue
from backup_functions.runtime import Lazy, lambda_handler


@dataclass
class Runtime:
    fleet: Fleet
    ledger: Ledger
    jobs: JobQueue
    config: logic.DispatchConfig
    clock: Clock


def build_runtime(*, clock: Clock | None = None) -> Runtime:
    env = settings_module.settings()
    fleet = settings_module.fleet(env.fleet_file)
    return Runtime(
        fleet=fleet,
        ledger=Ledger(env.ledger_table, boto3.client("dynamodb")),
        jobs=SqsJobQueue(boto3.client("sqs")),
        config=logic.DispatchConfig.from_fleet(
            fleet, bucket=env.bucket_name, queue_url_prefix=env.job_queue_url_prefix
        ),
        clock=clock or SystemClock(),
    )


runtime = Lazy(build_runtime)
configure = runtime.configure


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
        count(REJECTED_EVENTS)
        return {"status": "rejected", "reason": f"malformed Backup Requested: {reason}"}
    logger.set_correlation_id(req.request_id)
    logger.append_keys(target=req.target, requested_by=req.requested_by)
    result = logic.request(rt.fleet, rt.ledger, rt.jobs, rt.config, now=rt.clock.now(), req=req)
    if result.status == "rejected":
        logger.error("Backup Requested rejected", extra={"reason": result.reason})
        count(REJECTED_EVENTS)
    else:
        logger.info("Backup Requested handled", extra={"status": result.status, "job_id": result.job_id})
        if result.status == "dispatched":
            count(JOBS_DISPATCHED)
        if result.status == "not-sent":
            count(JOBS_NOT_SENT)
    return asdict(result)


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    rt = runtime.get()
    if is_backup_request(event):
        return _handle_request(rt, event)
    if event.get("detail-type") != "Scheduled Event":
        logger.warning(
            "dispatcher invoked with an unexpected event; running a scheduled tick",
            extra={"source": event.get("source"), "detail_type": event.get("detail-type")},
        )
    now = rt.clock.now()
    logger.set_correlation_id(f"tick-{now:%Y%m%dT%H%M%SZ}")
    result = logic.tick(rt.fleet, rt.ledger, rt.jobs, rt.config, now)
    count(JOBS_DISPATCHED, result.sent + result.resent)
    count(JOBS_NOT_SENT, len(result.not_sent))
    logger.info("dispatcher tick", extra={"tick": asdict(result)})
    return asdict(result)
