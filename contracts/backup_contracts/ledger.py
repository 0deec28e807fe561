"""The audit ledger's key layout (one DynamoDB table), defined once for the Lambdas and the CLI.

Table keys: ``pk`` (S), ``sk`` (S). Sparse GSI ``by-watch-deadline``: ``watch_shard`` (S) and
``watch_deadline`` (S, ISO-8601 UTC): every item that must see something happen by a deadline
carries both; the watchdog queries ``watch_deadline <= now`` per shard, so its cost follows the
number of overdue things, not the fleet size. TTL attribute: ``expires_at`` (epoch seconds).
See docs/ledger.md for the item types and access patterns.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

PK = "pk"
SK = "sk"
WATCH_INDEX = "by-watch-deadline"
WATCH_SHARD = "watch_shard"
WATCH_DEADLINE = "watch_deadline"
WATCH_KIND = "watch_kind"  # rpo | start | end | heartbeat | approval | restore | outbox | offsite
TTL_ATTRIBUTE = "expires_at"
WATCH_SHARDS = 4

STATE_SK = "STATE"


def iso(moment: datetime) -> str:
    """Sortable UTC timestamp used in keys and deadlines: 2026-11-22T18:55:00.000000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def watch_shard(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"W#{digest[0] % WATCH_SHARDS}"


def target_pk(target: str) -> str:
    return f"TARGET#{target}"


def agent_pk(agent: str) -> str:
    return f"AGENT#{agent}"


def job_sk(job_id: str) -> str:
    return f"JOB#{job_id}"


def run_sk(started_at: datetime, run_id: str) -> str:
    return f"RUN#{iso(started_at)}#{run_id}"


def offsite_sk(started_at: datetime, run_id: str) -> str:
    """A run's off-site copy (pipeline.offsite): next to its run record, the same start and id."""
    return f"OFFSITE#{iso(started_at)}#{run_id}"


RUN_SK_PREFIX = "RUN#"
OFFSITE_SK_PREFIX = "OFFSITE#"
JOB_SK_PREFIX = "JOB#"


def restore_pk(restore_id: str) -> str:
    return f"RESTORE#{restore_id}"


INCIDENTS_PK = "INCIDENTS"  # open incidents live in one small partition


def incident_sk(subject: str, kind: str) -> str:
    return f"{subject}#{kind}"


def scheduled_job_id(target: str, slot: datetime) -> str:
    """Deterministic per schedule slot, so two overlapping dispatcher ticks collide on a conditional put."""
    return f"{target}.{slot.astimezone(UTC):%Y%m%dT%H%M%SZ}"
