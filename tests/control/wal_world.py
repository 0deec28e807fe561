"""WAL archive helpers for the control-plane tests: PITR fleets, archived WAL objects as the agent stores
them (conditional PUT, SSE-KMS, ``sha256`` metadata) and their ``WAL Archived`` events."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from backup_contracts.fleet import Fleet
from backup_contracts.naming import agent_event_source, wal_object_key
from backup_contracts.wal import Segment, WalArchived, WalServerStatus

from .conftest import START, Aws, eventbridge_event, make_fleet

WAL_RPO = timedelta(minutes=5)
PITR_TARGET = {
    "name": "orders-pitr",
    "engine": "postgresql-physical",
    "schedule": "cron(0 2 * * *)",
    "rpo": "26h",
    "retention": "standard",
}


def pitr_fleet(**pipeline: Any) -> Fleet:
    """db-1 runs one PITR target and one dump target; db-2 a dump target."""
    plain = {"engine": "postgresql", "schedule": "cron(0 2 * * *)", "rpo": "26h", "retention": "standard"}
    return make_fleet(
        {"db-1": [PITR_TARGET, {**plain, "name": "orders-0"}], "db-2": [{**plain, "name": "shop-0"}]}, **pipeline
    )


def seg(number: int, timeline: int = 1) -> str:
    return Segment(timeline, number).name


def wal_body(file: str) -> bytes:
    return f"zstd frame of {file}".encode() * 8


def put_wal_object(aws: Aws, file: str, *, agent: str = "db-1", target: str = "orders-pitr", **changes: Any) -> str:
    """The object the agent's ``wal-push`` stores; returns its key."""
    body = changes.pop("body", wal_body(file))
    key = changes.pop("key", wal_object_key(agent, target, file))
    metadata = {"sha256": changes.pop("sha256", hashlib.sha256(body).hexdigest()), "wal-file": file}
    extra: dict[str, Any] = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": changes.pop("kms_key", aws.key_arn)}
    if changes.pop("sse", True) is False:
        extra = {}
    aws.session.client("s3").put_object(Bucket=aws.bucket, Key=key, Body=body, Metadata=metadata, **extra)
    return key


def wal_archived(aws: Aws, file: str, at: datetime | None = None, **changes: Any) -> WalArchived:
    agent, target = changes.pop("agent", "db-1"), changes.pop("target", "orders-pitr")
    body = wal_body(file)
    fields = {
        "agent": agent,
        "target": target,
        "file": file,
        "bucket": aws.bucket,
        "key": wal_object_key(agent, target, file),
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes_in": 16 * 1024 * 1024,
        "bytes_stored": len(body),
        "compression": "zst",
        "archived_at": at or START,
    }
    return WalArchived.model_validate({**fields, **changes})


def wal_event(archived: WalArchived, *, sender: str | None = None) -> dict[str, Any]:
    source = agent_event_source(sender or archived.agent)
    return eventbridge_event(source, "WAL Archived", archived.model_dump(mode="json"), archived.archived_at)


def server_status(current: str, at: datetime, **changes: Any) -> WalServerStatus:
    return WalServerStatus.model_validate(
        {"target": "orders-pitr", "current_file": current, "checked_at": at, **changes}
    )
