"""A restore world with a PITR target: base backups as the agent + audit leave them (object, manifest with
the base backup validator's facts, run record) and archived WAL as the audit records it (object + ledger row,
through the real ``ledger.wal``), on the restore tests' moto resources and simulated clock.

The layout every test starts from (``seeded``): base backup A (segments 0x10-0x11) and B (0x57-0x58), WAL
segments 0x10..0x70 on timeline 1, segment n archived at ``archived_at(n)``, five minutes apart.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from backup_contracts.events import BackupSucceeded
from backup_contracts.fleet import parse_fleet
from backup_contracts.naming import backup_object_key, manifest_key, wal_object_key
from backup_contracts.wal import Segment, WalArchived

from .conftest import FLEET, T0, World, restore_world

PG_AGENT, PITR, CLONE, DRILL = "pg-host", "orders-pitr", "orders-pitr-clone", "orders-pitr-drill"
STAGING = "orders-pitr-staging"  # protected: a restore into it waits for an approval
WAL_RPO = timedelta(minutes=5)
A_START = T0 - timedelta(hours=10)
A_END = A_START + timedelta(minutes=5)
B_START = A_START + timedelta(minutes=4 + 5 * (0x57 - 0x10))
B_END = B_START + timedelta(minutes=5)
LAST_SEGMENT = 0x70


def archived_at(number: int) -> datetime:
    """When segment ``number`` (timeline 1) was archived: four minutes after A started, then every five."""
    return A_START + timedelta(minutes=4 + 5 * (number - 0x10))


def seg(number: int, timeline: int = 1) -> str:
    return Segment(timeline, number).name


def pitr_fleet_document() -> dict[str, Any]:
    document = json.loads(json.dumps(FLEET))
    pg = {"engine": "postgresql-physical", "schedule": "rate(365 days)", "rpo": "400d"}
    document["agents"].append(
        {
            "name": PG_AGENT,
            "targets": [
                {
                    "name": PITR,
                    "engine": "postgresql-physical",
                    "schedule": "rate(6 hours)",
                    "rpo": "7h",
                    "wal_rpo": "5m",
                    "restore_to": [CLONE, STAGING],
                    "drill": {"schedule": "rate(7 days)", "destination": DRILL},
                },
                {"name": CLONE, **pg},
                {"name": DRILL, **pg},
                {"name": STAGING, "protected": True, **pg},
            ],
        }
    )
    return document


@dataclass
class Base:
    run_id: str
    started_at: datetime
    finished_at: datetime
    start_file: str
    end_file: str
    key: str


class PitrWorld(World):
    """``World`` with the PITR target's base backups and WAL archive."""

    def seed_base(self, started: datetime, finished: datetime, start_file: str, end_file: str) -> Base:
        run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"
        stored = f"base backup {run_id}".encode() * 64
        sha = hashlib.sha256(stored).hexdigest()
        key = backup_object_key(PG_AGENT, PITR, run_id, started, "tar.zst")
        response = self.s3.put_object(
            Bucket=self.resources.bucket,
            Key=key,
            Body=stored,
            Metadata={"engine": "postgresql-physical", "format": "pg_basebackup-tar", "run-id": run_id},
        )
        facts = {
            "system_identifier": "7300000000000000001",
            "timeline": 1,
            "start_lsn": "0/10000028",
            "end_lsn": "0/11000100",
            "start_file": start_file,
            "end_file": end_file,
            "wal_segment_size": 16 * 1024 * 1024,
            "start_time": started.isoformat(),
        }
        manifest = {"sha256": sha, "bytes_stored": len(stored), "validator": facts}
        self.s3.put_object(Bucket=self.resources.bucket, Key=manifest_key(key), Body=json.dumps(manifest).encode())
        event = BackupSucceeded(
            job_id=f"{PITR}.{started:%Y%m%dT%H%M%SZ}",
            run_id=run_id,
            target=PITR,
            agent=PG_AGENT,
            started_at=started,
            bucket=self.resources.bucket,
            key=key,
            finished_at=finished,
            version_id=response.get("VersionId"),
            bytes_in=len(stored) * 3,
            bytes_stored=len(stored),
            sha256=sha,
            engine="postgresql-physical",
            format="pg_basebackup-tar",
            compression="zstd-3",
            duration_s=(finished - started).total_seconds(),
        )
        self.ledger.runs.ended(event, "succeeded", expires_at=started + timedelta(days=30))
        self.ledger.wal.base_backup(PITR, PG_AGENT, start_file=start_file, good_at=finished, wal_rpo=WAL_RPO)
        return Base(run_id, started, finished, start_file, end_file, key)

    def seed_wal(self, file: str, at: datetime) -> WalArchived:
        """One archived WAL file: its object and its ledger row (as the audit records a verified one)."""
        body = f"wal {file}".encode() * 32
        key = wal_object_key(PG_AGENT, PITR, file)
        self.s3.put_object(Bucket=self.resources.bucket, Key=key, Body=body)
        archived = WalArchived(
            agent=PG_AGENT,
            target=PITR,
            file=file,
            bucket=self.resources.bucket,
            key=key,
            sha256=hashlib.sha256(body).hexdigest(),
            bytes_in=16 * 1024 * 1024,
            bytes_stored=len(body),
            compression="zstd",
            archived_at=at,
        )
        self.ledger.wal.record_file(
            archived, recorded_at=at + timedelta(seconds=2), wal_rpo=WAL_RPO, expires_at=at + timedelta(days=30)
        )
        return archived

    def seed_archive(self, *, skip: frozenset[int] = frozenset(), last: int = LAST_SEGMENT) -> None:
        for number in range(0x10, last + 1):
            if number not in skip:
                self.seed_wal(seg(number), archived_at(number))

    def pitr_request(self, **fields: Any) -> Any:
        return self.request(target=PITR, destination=CLONE, mode="clone", **fields)


@pytest.fixture
def pitr_world(aws_credentials: dict[str, str]) -> Iterator[PitrWorld]:
    with restore_world(parse_fleet(pitr_fleet_document()), PitrWorld) as made:
        yield made
