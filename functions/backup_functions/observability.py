"""Shared Powertools Logger, Tracer and Metrics for every Lambda of the pipeline.

Creating them makes no AWS call: the Tracer disables itself outside Lambda (or with
POWERTOOLS_TRACE_DISABLED=true) and Metrics only prints EMF lines to stdout when flushed. Service
name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE,
defaulting to "backup-pipeline" / "BackupPipeline".
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

DEFAULT_SERVICE = "backup-pipeline"
DEFAULT_NAMESPACE = "BackupPipeline"

# Metric names (the CDK dashboard and alarms refer to these).
BACKUPS_SUCCEEDED = "BackupsSucceeded"
BACKUPS_FAILED = "BackupsFailed"
BACKUPS_UNVERIFIED = "BackupsUnverified"
BYTES_STORED = "BytesStored"
BACKUP_DURATION_SECONDS = "BackupDurationSeconds"
JOBS_DISPATCHED = "JobsDispatched"
JOBS_NOT_SENT = "JobsNotSent"
OVERDUE_TARGETS = "OverdueTargets"
REJECTED_EVENTS = "RejectedEvents"


def _service() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE


def _namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE


logger = Logger(service=_service())
tracer = Tracer(service=_service())
metrics = Metrics(service=_service(), namespace=_namespace())

__all__ = [
    "BACKUPS_FAILED",
    "BACKUPS_SUCCEEDED",
    "BACKUPS_UNVERIFIED",
    "BACKUP_DURATION_SECONDS",
    "BYTES_STORED",
    "JOBS_DISPATCHED",
    "JOBS_NOT_SENT",
    "OVERDUE_TARGETS",
    "REJECTED_EVENTS",
    "MetricUnit",
    "logger",
    "metrics",
    "tracer",
]
