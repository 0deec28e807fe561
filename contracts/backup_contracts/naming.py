"""Names and layouts defined once and shared by the stack, the Lambdas, the agents and the local pipeline."""

from __future__ import annotations

import re
from datetime import datetime

PROJECT = "backup-pipeline"

# EventBridge sources
SOURCE_AGENT = "backup.agent"
SOURCE_REQUESTS = "backup.requests"
SOURCE_PIPELINE = "backup.pipeline"

# A name usable in SQS queue names, IAM role names, S3 prefixes and ledger keys.
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
NAME_RE = re.compile(NAME_PATTERN)

AGENT_PREFIX_ROOT = "agents"


def event_bus_name(pipeline: str) -> str:
    return f"{pipeline}-bus"


def job_queue_name(pipeline: str, agent: str) -> str:
    return f"{pipeline}-{agent}-jobs"


def job_dlq_name(pipeline: str, agent: str) -> str:
    return f"{pipeline}-{agent}-jobs-dlq"


def agent_prefix(agent: str) -> str:
    """Every object an agent writes lives below this prefix; its role may write nowhere else."""
    return f"{AGENT_PREFIX_ROOT}/{agent}/"


def backup_object_key(agent: str, target: str, run_id: str, started: datetime, extension: str) -> str:
    """Where one run's backup lands: sortable by time, unique by run id, inside the agent's prefix."""
    stamp = started.strftime("%Y/%m/%d")
    return f"{agent_prefix(agent)}{target}/{stamp}/{run_id}.{extension}"


def manifest_key(object_key: str) -> str:
    return f"{object_key}.manifest.json"


# Queue settings shared by the stack and the local pipeline.
JOB_QUEUE_VISIBILITY_TIMEOUT_S = 300
JOB_QUEUE_MAX_RECEIVE_COUNT = 5
JOB_QUEUE_RETENTION_S = 4 * 24 * 3600
DLQ_RETENTION_S = 14 * 24 * 3600

# Object tag that carries a backup's retention tier; lifecycle rules filter on it.
RETENTION_TAG = "retention"


def retention_tag_value(retention_class: str, tier: str) -> str:
    return f"{retention_class}-{tier}"


# Queues that buffer bus events for the event-driven Lambdas (rule → SQS → Lambda, with a DLQ).
def audit_events_queue_name(pipeline: str) -> str:
    return f"{pipeline}-audit-events"


def restore_events_queue_name(pipeline: str) -> str:
    return f"{pipeline}-restore-events"


def events_dlq_name(queue_name: str) -> str:
    return f"{queue_name}-dlq"


def ledger_table_name(pipeline: str) -> str:
    return f"{pipeline}-ledger"


def alert_topic_name(pipeline: str) -> str:
    return f"{pipeline}-alerts"


EVENTS_QUEUE_VISIBILITY_TIMEOUT_S = 360  # at least 6x the consuming Lambda's timeout (60 s), as AWS advises
EVENTS_QUEUE_MAX_RECEIVE_COUNT = 3
