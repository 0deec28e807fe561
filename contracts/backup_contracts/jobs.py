"""Job messages on an agent's SQS queue. No credentials, ever: the agent's local config maps a
target name to how it connects."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl, model_validator

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
    """For a restore of a PITR target: the WAL to replay after the base backup, and where recovery stops.

    ``recovery_target`` says where: ``time`` — before the first commit after ``recovery_target_time`` (a
    request's ``backup: {at: TIME}``); ``end`` — the end of the WAL the index lists (``latest``, drills: no
    target is set, PostgreSQL replays every file ``restore_command`` yields); ``immediate`` — the base
    backup's consistent end (a request naming a ``run_id``; PostgreSQL's ``recovery_target = 'immediate'``).
    ``index_url`` is signed at each send of the job, like ``RestoreSource.presigned_url``: the job stored
    in the ledger has none."""

    recovery_target: Literal["time", "end", "immediate"] = Field(
        default="time",
        description="time: stop at recovery_target_time; end: replay every listed file;"
        " immediate: stop once the base backup is consistent",
    )
    recovery_target_time: Timestamp | None = Field(
        default=None, description="with recovery_target time only: recovery stops before the first commit after this"
    )
    index_url: HttpUrl | None = Field(
        default=None, description="short-lived GET URL for the WalIndex (backup_contracts.wal); signed at each send"
    )
    index_sha256: Sha256Hex
    index_bytes: ByteCount = Field(gt=0)
    files: ByteCount = Field(description="how many archived WAL files the index lists")
    last_file: Label = Field(description="the newest archived file the index lists")

    @model_validator(mode="after")
    def _time_only_with_a_time_target(self) -> WalReplay:
        if (self.recovery_target == "time") != (self.recovery_target_time is not None):
            raise ValueError("recovery_target_time is required with recovery_target time, and only then")
        return self


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
