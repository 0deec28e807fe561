"""Job messages on an agent's SQS queue. No credentials, ever: the agent's local config maps a
target name to how it connects."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl

from backup_contracts.bounds import ByteCount, Facts, Identifier, Label, Name, ObjectKey, Sha256Hex, Timestamp
from backup_contracts.events import Contract

JobKind = Literal["backup", "restore", "drill"]
Trigger = Literal["schedule", "user", "admin", "drill", "pre-restore"]


class RestoreSource(Contract):
    """The backup object a restore or drill reads, and how the agent may read it."""

    run_id: Identifier
    target: Name
    bucket: Label
    key: ObjectKey
    version_id: Label | None = None
    sha256: Sha256Hex
    bytes_stored: ByteCount = Field(gt=0)
    engine: Label
    format: Label
    compression: Label
    presigned_url: HttpUrl | None = Field(
        default=None, description="short-lived GET URL for exactly this object; the signer holds kms:Decrypt"
    )
    started_at: Timestamp | None = Field(default=None, description="when the backup's dump started")
    manifest_facts: Facts = Field(
        default_factory=dict, description="facts from the backup's manifest the restore is verified against"
    )
    wal: WalReplay | None = Field(default=None, description="point-in-time restores of a PITR target only")


class WalReplay(Contract):
    """For a point-in-time restore: the WAL to replay after the base backup, and where to stop."""

    recovery_target_time: Timestamp = Field(description="recovery stops before the first commit after this")
    index_url: HttpUrl = Field(description="short-lived GET URL for the WalIndex (backup_contracts.wal)")
    index_sha256: Sha256Hex
    index_bytes: ByteCount = Field(gt=0)
    files: ByteCount = Field(description="how many archived WAL files the index lists")
    last_file: Label = Field(description="the newest archived file the index lists")


class Job(Contract):
    job_id: Identifier
    kind: JobKind
    agent: Name
    target: Name
    trigger: Trigger
    issued_at: Timestamp
    deadline: Timestamp
    bucket: Label
    key_prefix: ObjectKey = Field(description="the object key for this run is chosen below this prefix")
    retention_class: Name
    # restore and drill jobs only
    restore_id: Identifier | None = None
    destination: Name | None = None
    mode: Literal["clone", "in-place", "drill"] | None = None
    source: RestoreSource | None = None
