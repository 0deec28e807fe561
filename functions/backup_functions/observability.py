"""Shared Powertools Logger, Tracer and Metrics for every Lambda of the pipeline.

Creating them makes no AWS call: the Tracer disables itself outside Lambda (or with
POWERTOOLS_TRACE_DISABLED=true) and Metrics only prints EMF lines to stdout when flushed. Service
name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE, which
the stack sets to the pipeline's name (``backup_contracts.environment``).

Every log line of the functions is Powertools JSON with the invocation's keys and correlation id:
the domain modules' standard loggers (``logging.getLogger(__name__)`` under ``backup_functions`` and
``backup_contracts``) write through the Powertools handler, and that handler masks secrets
(``backup_contracts.redaction.RedactingFilter``) in every record, whoever logged it.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from backup_contracts.environment import POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME
from backup_contracts.redaction import RedactingFilter

DEFAULT_SERVICE = "backup-pipeline"
DEFAULT_NAMESPACE = "BackupPipeline"
PACKAGE_LOGGERS = frozenset({"backup_functions", "backup_contracts"})

# Metric names (the CDK dashboard and alarms refer to these).
BACKUPS_SUCCEEDED = "BackupsSucceeded"
BACKUPS_FAILED = "BackupsFailed"
BACKUPS_UNVERIFIED = "BackupsUnverified"
BYTES_STORED = "BytesStored"
BACKUP_DURATION_SECONDS = "BackupDurationSeconds"
WAL_FILES_ARCHIVED = "WalFilesArchived"
WAL_BYTES_STORED = "WalBytesStored"
JOBS_DISPATCHED = "JobsDispatched"
JOBS_NOT_SENT = "JobsNotSent"
OVERDUE_TARGETS = "OverdueTargets"
SILENT_AGENTS = "SilentAgents"
OPEN_INCIDENTS = "OpenIncidents"
ALERTS_SENT = "AlertsSent"
REJECTED_EVENTS = "RejectedEvents"
RESTORES_REJECTED = "RestoresRejected"
RESTORES_DISPATCHED = "RestoresDispatched"
RESTORES_SUCCEEDED = "RestoresSucceeded"
RESTORES_FAILED = "RestoresFailed"
DRILLS_SUCCEEDED = "DrillsSucceeded"
DRILLS_FAILED = "DrillsFailed"
DRILL_RTO_SECONDS = "DrillRtoSeconds"


def _service() -> str:
    return os.environ.get(POWERTOOLS_SERVICE_NAME) or DEFAULT_SERVICE


def _namespace() -> str:
    return os.environ.get(POWERTOOLS_METRICS_NAMESPACE) or DEFAULT_NAMESPACE


# "name" (the standard logger's name) is a key given at creation, so clearing state per invocation keeps it.
logger = Logger(service=_service(), name="%(name)s")
tracer = Tracer(service=_service())
metrics = Metrics(service=_service(), namespace=_namespace())


def _route_package_logs_through_powertools() -> None:
    for name in PACKAGE_LOGGERS:
        logging.getLogger(name)  # registered, so that Powertools configures it (and its children)
    copy_config_to_registered_loggers(source_logger=logger, include=set(PACKAGE_LOGGERS))
    logger.registered_handler.addFilter(RedactingFilter())


_route_package_logs_through_powertools()


def count(name: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


__all__ = [
    "ALERTS_SENT",
    "BACKUPS_FAILED",
    "BACKUPS_SUCCEEDED",
    "BACKUPS_UNVERIFIED",
    "BACKUP_DURATION_SECONDS",
    "BYTES_STORED",
    "DRILLS_FAILED",
    "DRILLS_SUCCEEDED",
    "DRILL_RTO_SECONDS",
    "JOBS_DISPATCHED",
    "JOBS_NOT_SENT",
    "OPEN_INCIDENTS",
    "OVERDUE_TARGETS",
    "REJECTED_EVENTS",
    "RESTORES_DISPATCHED",
    "RESTORES_FAILED",
    "RESTORES_REJECTED",
    "RESTORES_SUCCEEDED",
    "SILENT_AGENTS",
    "MetricUnit",
    "count",
    "logger",
    "metrics",
    "tracer",
]
