"""Agent-side restore tests: a moto server (presigned URLs need a real HTTP endpoint), backups made by
the agent's real streaming pipeline, and restores by ``backup_agent.restore.RestoreRun``."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from agent_engines.real_databases import (  # noqa: F401 - shared with the engine tests; fixtures re-exported
    MARIADB,
    PG,
    mariadb,
    mariadb_server,
    postgres_server,
    psql,
    unique,
)
from botocore.config import Config

from backup_agent.config import AgentConfig, parse_config
from backup_agent.engines import build_engine
from backup_agent.engines.base import Engine
from backup_agent.events import RecordingSink
from backup_agent.pipeline import BackupRun, RunOutcome
from backup_agent.restore import RestoreOutcome, RestoreRun
from backup_contracts.events import BackupSucceeded
from backup_contracts.jobs import Job, RestoreSource
from backup_contracts.naming import agent_prefix, restore_facts

AGENT = "db-host"
REGION = "us-east-1"


def _no_secret(ref: object) -> str:
    raise AssertionError(f"no secrets in these tests: {ref!r}")


@dataclass
class AgentWorld:
    endpoint: str
    bucket: str
    kms_key_arn: str
    s3: Any
    state_dir: Path
    targets: dict[str, Any] = field(default_factory=dict)
    events: RecordingSink = field(default_factory=RecordingSink)

    @property
    def config(self) -> AgentConfig:
        data = {
            "agent": AGENT,
            "region": REGION,
            "queue_url": f"{self.endpoint}/123456789012/unused",
            "bus_name": "rt-bus",
            "kms_key_id": self.kms_key_arn,
            "bucket": self.bucket,
            "state_dir": str(self.state_dir),
            "compression": {"level": 1, "threads": 1},
            "targets": self.targets,
        }
        return parse_config(json.dumps(data))

    def engine(self, target: str) -> Engine:
        return build_engine(target, self.config.targets[target], _no_secret)

    # ------------------------------------------------------------------ backup through the real pipeline
    def backup(self, target: str, *, trigger: str = "schedule") -> BackupSucceeded:
        now = datetime.now(UTC)
        job = Job(
            job_id=f"{target}.{uuid.uuid4().hex[:10]}",
            kind="backup",
            agent=AGENT,
            target=target,
            trigger=trigger,
            issued_at=now,
            deadline=now + timedelta(hours=1),
            bucket=self.bucket,
            key_prefix=agent_prefix(AGENT),
            retention_class="standard",
        )
        outcome: RunOutcome = BackupRun(job, self.engine(target), self.config, s3=self.s3, events=self.events).execute()
        assert outcome.ok, f"the backup failed: {outcome.event}"
        assert isinstance(outcome.event, BackupSucceeded)
        self.manifests = getattr(self, "manifests", {})
        self.manifests[outcome.event.run_id] = outcome.manifest
        return outcome.event

    # ------------------------------------------------------------------ restore
    def presign(self, key: str, version_id: str | None) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        return str(self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=3600))

    def restore_job(
        self,
        backup: BackupSucceeded,
        *,
        destination: str,
        mode: str,
        sha256: str | None = None,
        use_version: bool = True,
        url: str | None = None,
        kind: str = "restore",
    ) -> Job:
        now = datetime.now(UTC)
        version = backup.version_id if use_version else None
        restore_id = f"r-{uuid.uuid4().hex[:10]}"
        manifest = getattr(self, "manifests", {}).get(backup.run_id, {})
        return Job(
            job_id=restore_id,
            kind=kind,
            agent=AGENT,
            target=destination,
            trigger="drill" if kind == "drill" else "user",
            issued_at=now,
            deadline=now + timedelta(hours=1),
            bucket=self.bucket,
            key_prefix=agent_prefix(AGENT),
            retention_class="standard",
            restore_id=restore_id,
            destination=destination,
            mode=mode,
            source=RestoreSource(
                run_id=backup.run_id,
                target=backup.target,
                bucket=backup.bucket,
                key=backup.key,
                version_id=version,
                sha256=sha256 or backup.sha256,
                bytes_stored=backup.bytes_stored,
                engine=backup.engine,
                format=backup.format,
                compression=backup.compression,
                presigned_url=url or self.presign(backup.key, version),
                started_at=backup.started_at,
                manifest_facts=restore_facts(manifest),
            ),
        )

    def restore(self, job: Job, **kwargs: Any) -> RestoreOutcome:
        return RestoreRun(
            job,
            self.config,
            engine_factory=self.engine,
            events=self.events,
            s3=self.s3,
            spool_dir=self.state_dir / "spool",
            **kwargs,
        ).execute()

    def types(self) -> list[str]:
        return [type(e).__name__ for e in self.events.events]


@pytest.fixture
def agent_world(aws_env: dict[str, str], tmp_path: Path) -> AgentWorld:
    s3 = boto3.client("s3", region_name=REGION, config=Config(signature_version="s3v4"))
    kms = boto3.client("kms", region_name=REGION)
    key_arn = kms.create_key(Description="backups")["KeyMetadata"]["Arn"]
    bucket = f"rt-backups-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return AgentWorld(aws_env["AWS_ENDPOINT_URL"], bucket, key_arn, s3, tmp_path / "state")
