"""Names and layouts defined once and shared by the stack, the Lambdas, the agents and the local pipeline."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

PROJECT = "backup-pipeline"

# EventBridge sources. Agents are a family: each agent's events carry its own source,
# ``backup.agent.<agent>``, which its IAM role alone may put (the ``events:source`` condition), so the
# source names the sender and the ``agent`` field of an event is never believed on its own.
SOURCE_AGENT = "backup.agent"
AGENT_SOURCE_PREFIX = SOURCE_AGENT + "."
SOURCE_REQUESTS = "backup.requests"
SOURCE_PIPELINE = "backup.pipeline"

# A name usable in SQS queue names, IAM role names, S3 prefixes and ledger keys.
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
NAME_RE = re.compile(NAME_PATTERN)

AGENT_PREFIX_ROOT = "agents"


def agent_event_source(agent: str) -> str:
    """The EventBridge source of every event ``agent`` sends (``backup.agent.db-1``)."""
    return f"{AGENT_SOURCE_PREFIX}{agent}"


def sender_agent(source: str) -> str | None:
    """The agent an event source names (``backup.agent.db-1`` → ``db-1``); None for any other source."""
    if not source.startswith(AGENT_SOURCE_PREFIX):
        return None
    agent = source.removeprefix(AGENT_SOURCE_PREFIX)
    return agent if NAME_RE.fullmatch(agent) else None  # fullmatch: re's $ would let "db-1\n" through


def source_family(source: str) -> str:
    """The contract source an event source belongs to: every agent's source is ``backup.agent``."""
    return SOURCE_AGENT if sender_agent(source) is not None else source


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


# The off-site vault (pipeline.offsite): a second stack in the vault's region and account. Its names are
# fixed so that each side can name the other without a cross-stack reference (they live in different
# accounts or regions): the vault trusts the replication role by ARN, the primary replicates to the vault
# bucket and its key alias.
def vault_stack_name(pipeline: str) -> str:
    return f"{pipeline}-vault"


def vault_bucket_name(pipeline: str, account: str) -> str:
    """Globally unique (the account is in it); at most 40 + 7 + 12 = 59 characters."""
    return f"{pipeline}-vault-{account}"


def vault_key_alias(pipeline: str) -> str:
    return f"alias/{pipeline}-vault"


def replication_role_name(pipeline: str) -> str:
    return f"{pipeline}-replication"


WAL_DIR = "wal"


def wal_prefix(agent: str, target: str) -> str:
    """Where a PITR target's archived WAL lives: inside the agent's prefix, beside its base backups."""
    return f"{agent_prefix(agent)}{target}/{WAL_DIR}/"


def wal_object_key(agent: str, target: str, wal_file: str, extension: str = "zst") -> str:
    """One archived WAL file (``…/wal/000000010000000000000003.zst``): a fixed key, so a second upload of
    the same file is a conditional write that cannot replace the first."""
    return f"{wal_prefix(agent, target)}{wal_file}.{extension}"


# The restore coordinator's own objects (a point-in-time restore's WAL index): its only write in the bucket,
# never readable by agents, expired after RESTORE_OBJECTS_DAYS by the bucket's lifecycle.
RESTORE_PREFIX_ROOT = "restores"
RESTORE_OBJECTS_DAYS = 3


def wal_index_key(restore_id: str) -> str:
    """The WAL index of one point-in-time restore (``restores/<restore_id>/wal-index.json``)."""
    return f"{RESTORE_PREFIX_ROOT}/{restore_id}/wal-index.json"


def manifest_key(object_key: str) -> str:
    return f"{object_key}.manifest.json"


def restore_facts(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What of a backup's manifest its restore is verified against and recreates: the format
    validator's facts (tables, rows, bytes) and the database's own properties (encoding, collation...)."""
    facts = dict(manifest["validator"]) if isinstance(manifest.get("validator"), dict) else {}
    if isinstance(manifest.get("database_properties"), dict) and manifest["database_properties"]:
        facts["database_properties"] = dict(manifest["database_properties"])
    return facts


# Queue settings shared by the stack and the local pipeline.
JOB_QUEUE_VISIBILITY_TIMEOUT_S = 300
JOB_QUEUE_MAX_RECEIVE_COUNT = 5
JOB_QUEUE_RETENTION_S = 4 * 24 * 3600
DLQ_RETENTION_S = 14 * 24 * 3600

# Object tag that carries a backup's retention tier; lifecycle rules filter on it.
RETENTION_TAG = "retention"
# The tag value of a target's newest keep_last good backups: no lifecycle rule matches it, so they are
# never expired by age (a tier's value is always ``<class>-<tier>``, never this).
KEEP_TAG_VALUE = "keep"


def retention_tag_value(retention_class: str, tier: str) -> str:
    return f"{retention_class}-{tier}"


# Queues that buffer bus events for the event-driven Lambdas (rule → SQS → Lambda, with a DLQ).
def audit_events_queue_name(pipeline: str) -> str:
    return f"{pipeline}-audit-events"


def restore_events_queue_name(pipeline: str) -> str:
    return f"{pipeline}-restore-events"


def chat_topic_name(pipeline: str) -> str:
    return f"{pipeline}-chat-alerts"


def silence_events_queue_name(pipeline: str) -> str:
    return f"{pipeline}-silence-events"


def events_dlq_name(queue_name: str) -> str:
    return f"{queue_name}-dlq"


def ledger_table_name(pipeline: str) -> str:
    return f"{pipeline}-ledger"


def alert_topic_name(pipeline: str) -> str:
    return f"{pipeline}-alerts"


EVENTS_QUEUE_VISIBILITY_TIMEOUT_S = 360  # at least 6x the consuming Lambda's timeout (60 s), as AWS advises
EVENTS_QUEUE_MAX_RECEIVE_COUNT = 3
