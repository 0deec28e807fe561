"""Events on the pipeline's own EventBridge bus (see docs/contracts.md).

Each model is one ``detail-type``; ``EVENT_TYPES`` maps (source, detail-type) to its model so that
every consumer parses with the same definition.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from backup_contracts.bounds import (
    TARGETS_MAX,
    ByteCount,
    ExitCode,
    Facts,
    Flag,
    Identifier,
    Label,
    Name,
    ObjectKey,
    RequiredLabel,
    Seconds,
    Sha256Hex,
    Text,
    Timestamp,
)
from backup_contracts.contract import Contract
from backup_contracts.naming import (
    AGENT_SOURCE_PREFIX,
    SOURCE_AGENT,
    SOURCE_PIPELINE,
    SOURCE_REQUESTS,
    agent_event_source,
    source_family,
)
from backup_contracts.wal import WalArchived, WalServerStatus

Reason = Annotated[str, Field(min_length=1, max_length=1024)]

STDERR_TAIL_MAX = 4096


class DetailType(StrEnum):
    BACKUP_STARTED = "Backup Started"
    BACKUP_SUCCEEDED = "Backup Succeeded"
    BACKUP_FAILED = "Backup Failed"
    RESTORE_STARTED = "Restore Started"
    RESTORE_SUCCEEDED = "Restore Succeeded"
    RESTORE_FAILED = "Restore Failed"
    AGENT_HEARTBEAT = "Agent Heartbeat"
    WAL_ARCHIVED = "WAL Archived"
    RESTORE_REQUESTED = "Restore Requested"
    RESTORE_APPROVED = "Restore Approved"
    BACKUP_REQUESTED = "Backup Requested"
    BACKUP_MISSING = "Backup Missing"
    RESTORE_REJECTED = "Restore Rejected"
    RESTORE_VALIDATED = "Restore Validated"
    SILENCE_REQUESTED = "Silence Requested"
    UNSILENCE_REQUESTED = "Unsilence Requested"


# --------------------------------------------------------------------------- agent → pipeline


class BackupStarted(Contract):
    job_id: Identifier
    run_id: Identifier
    target: Name
    agent: Name
    trigger: Literal["schedule", "user", "admin", "drill", "pre-restore"] = "schedule"
    started_at: Timestamp
    bucket: Label
    key: ObjectKey


class BackupSucceeded(BackupStarted):
    finished_at: Timestamp
    version_id: Label | None = None
    bytes_in: ByteCount
    bytes_stored: ByteCount = Field(gt=0)
    sha256: Sha256Hex
    engine: Label
    format: Label
    compression: Label
    tool_version: Label | None = None
    server_version: Label | None = None
    duration_s: Seconds
    s3_checksum_sha256: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{43}=(-[0-9]{1,5})?$")] | None = Field(
        default=None,
        description="S3's ChecksumSHA256 of the stored object: base64 of the SHA-256 for a single-part"
        " upload, or the composite (SHA-256 of the parts' SHA-256 digests) followed by '-<parts>' for a"
        " multipart upload; the audit compares it with the object's checksum in S3",
    )


class BackupFailed(BackupStarted):
    finished_at: Timestamp
    stage: Literal["dump", "upload", "verify", "config"]
    exit_code: ExitCode | None = None
    error: Text
    stderr_tail: Text = Field(default="", max_length=STDERR_TAIL_MAX)


class RestoreStarted(Contract):
    restore_id: Identifier
    job_id: Identifier
    agent: Name
    source_target: Name
    source_run_id: Identifier
    destination: Name
    mode: Literal["clone", "in-place", "drill"]
    started_at: Timestamp


class RestoreSucceeded(RestoreStarted):
    finished_at: Timestamp
    duration_s: Seconds
    safety_backup_run_id: Identifier | None = None
    verification: Facts = Field(default_factory=dict)


class RestoreFailed(RestoreStarted):
    finished_at: Timestamp
    stage: Literal["download", "verify-object", "safety-backup", "restore", "verify-restore", "config"]
    error: Text
    destination_touched: Flag
    stderr_tail: Text = Field(default="", max_length=STDERR_TAIL_MAX)


class AgentHeartbeat(Contract):
    agent: Name
    version: RequiredLabel
    targets: list[Name] = Field(max_length=TARGETS_MAX)
    sent_at: Timestamp
    wal: list[WalServerStatus] | None = Field(default=None, max_length=TARGETS_MAX, description="PITR targets' servers")


# --------------------------------------------------------------------------- people → pipeline


class BackupSelector(Contract):
    """Which backup to restore: exactly one of latest, at (latest at or before), run_id."""

    # the schema says the rule too: exactly one of the three is set (latest true, at or run_id not null)
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["latest"], "properties": {"latest": {"const": True}}},
                {"required": ["at"], "properties": {"at": {"type": "string"}}},
                {"required": ["run_id"], "properties": {"run_id": {"type": "string"}}},
            ]
        }
    )

    latest: Flag = False
    at: Timestamp | None = None
    run_id: Identifier | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BackupSelector:
        chosen = [self.latest, self.at is not None, self.run_id is not None]
        if sum(chosen) != 1:
            raise ValueError("choose exactly one of: latest=true, at=<timestamp>, run_id=<id>")
        return self


class RestoreRequested(Contract):
    # the schema says the rule too: a clone (the default mode) names its destination, in-place names none
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["mode"], "properties": {"mode": {"const": "in-place"}}},
            "then": {"properties": {"destination": {"type": "null"}}},
            "else": {"required": ["destination"], "properties": {"destination": {"type": "string"}}},
        }
    )

    restore_id: Identifier
    target: Name
    backup: BackupSelector = Field(default_factory=lambda: BackupSelector(latest=True))
    destination: Name | None = Field(default=None, description="clone destination target; omitted with mode in-place")
    mode: Literal["clone", "in-place"] = "clone"
    requested_by: RequiredLabel
    reason: Reason
    dry_run: Flag = False
    source: Literal["primary", "offsite"] = Field(
        default="primary",
        description="where the backup is read: primary (the backup bucket; its verified off-site copy when the"
        " primary object is gone or does not match) or offsite (the copy in the off-site vault)",
    )

    @model_validator(mode="after")
    def _destination_matches_mode(self) -> RestoreRequested:
        if self.mode == "clone" and self.destination is None:
            raise ValueError("a clone restore needs a destination target (or use mode in-place)")
        if self.mode == "in-place" and self.destination is not None:
            raise ValueError("an in-place restore writes to the target itself; drop destination")
        return self


class RestoreApproved(Contract):
    """Approves nothing: anyone may put it on the bus, so the coordinator answers it with a rejection
    (approval-not-authenticated) that says how to approve — `backupctl approve`, through the approvals URL,
    which AWS authenticates. Kept so that an approval sent the old way gets that answer instead of silence."""

    restore_id: Identifier
    approved_by: RequiredLabel
    approval_token: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class BackupRequested(Contract):
    request_id: Identifier
    target: Name
    requested_by: RequiredLabel
    reason: Reason


# A glob over target or agent names (``*``, ``?``, ``[...]``; backup_contracts.silences.matches)
SilencePattern = Annotated[str, StringConstraints(pattern=r"^[a-z0-9*?\[\]-]{1,64}$")]


class SilenceRequested(Contract):
    """Hold the pages about matching targets and agents until ``expires_at`` (a maintenance window when
    ``starts_at`` lies ahead); incidents are still recorded and shown. The rules: backup_contracts.silences."""

    model_config = ConfigDict(  # null is no pattern: the schema says so as the model does
        json_schema_extra={
            "anyOf": [{"required": [f], "properties": {f: {"type": "string"}}} for f in ("target", "agent")]
        }
    )

    silence_id: Identifier
    target: SilencePattern | None = Field(default=None, description="glob over target names, e.g. orders-*")
    agent: SilencePattern | None = Field(default=None, description="glob over agent names; with target: both")
    starts_at: Timestamp | None = Field(default=None, description="default: when the pipeline receives it")
    expires_at: Timestamp
    requested_by: RequiredLabel
    reason: Reason

    @model_validator(mode="after")
    def _a_pattern(self) -> SilenceRequested:
        if self.target is None and self.agent is None:
            raise ValueError("a silence names a target pattern, an agent pattern or both (e.g. target: orders-*)")
        return self


class UnsilenceRequested(Contract):
    """End a silence now; what it still holds pages at the watchdog's next tick."""

    silence_id: Identifier
    requested_by: RequiredLabel
    reason: Reason | None = None


# --------------------------------------------------------------------------- pipeline → anyone


class BackupMissing(Contract):
    """The watchdog found no good backup of a target within its RPO (sent once per incident, as the page)."""

    target: Name
    agent: Name
    problem: Text
    since: Timestamp
    last_good_at: Timestamp | None = None


class RestoreRejected(Contract):
    restore_id: Identifier
    target: Label
    reason_code: Label
    reason: Text
    requested_by: Label


class RestoreValidated(Contract):
    """A dry run's report: the request passed every check and this is what would be restored."""

    restore_id: Identifier
    target: Name
    destination: Name
    mode: Literal["clone", "in-place"]
    requested_by: Label
    source_run_id: Identifier
    source_started_at: Timestamp | None = None
    source_finished_at: Timestamp | None = None
    bytes_stored: ByteCount
    sha256: Sha256Hex
    destination_agent: Name
    requires_approval: Flag = False
    dry_run: Flag = True


# (source family, detail-type) → model. Agent events arrive from ``backup.agent.<agent>`` (``source_family``).
EVENT_TYPES: dict[tuple[str, str], type[Contract]] = {
    (SOURCE_AGENT, DetailType.BACKUP_STARTED): BackupStarted,
    (SOURCE_AGENT, DetailType.BACKUP_SUCCEEDED): BackupSucceeded,
    (SOURCE_AGENT, DetailType.BACKUP_FAILED): BackupFailed,
    (SOURCE_AGENT, DetailType.RESTORE_STARTED): RestoreStarted,
    (SOURCE_AGENT, DetailType.RESTORE_SUCCEEDED): RestoreSucceeded,
    (SOURCE_AGENT, DetailType.RESTORE_FAILED): RestoreFailed,
    (SOURCE_AGENT, DetailType.AGENT_HEARTBEAT): AgentHeartbeat,
    (SOURCE_AGENT, DetailType.WAL_ARCHIVED): WalArchived,
    (SOURCE_REQUESTS, DetailType.RESTORE_REQUESTED): RestoreRequested,
    (SOURCE_REQUESTS, DetailType.RESTORE_APPROVED): RestoreApproved,
    (SOURCE_REQUESTS, DetailType.BACKUP_REQUESTED): BackupRequested,
    (SOURCE_REQUESTS, DetailType.SILENCE_REQUESTED): SilenceRequested,
    (SOURCE_REQUESTS, DetailType.UNSILENCE_REQUESTED): UnsilenceRequested,
    (SOURCE_PIPELINE, DetailType.BACKUP_MISSING): BackupMissing,
    (SOURCE_PIPELINE, DetailType.RESTORE_REJECTED): RestoreRejected,
    (SOURCE_PIPELINE, DetailType.RESTORE_VALIDATED): RestoreValidated,
}
DETAIL_TYPE_OF: dict[type[Contract], tuple[str, str]] = {model: key for key, model in EVENT_TYPES.items()}

ANY_AGENT: dict[str, str] = {"prefix": AGENT_SOURCE_PREFIX}  # an event pattern matching every agent's source

# Events routed to the audit function: the agent's backup and restore lifecycle and heartbeats.
AUDIT_PATTERN: dict[str, Any] = {
    "source": [ANY_AGENT],
    "detail-type": [
        DetailType.BACKUP_STARTED.value,
        DetailType.BACKUP_SUCCEEDED.value,
        DetailType.BACKUP_FAILED.value,
        DetailType.RESTORE_STARTED.value,
        DetailType.RESTORE_SUCCEEDED.value,
        DetailType.RESTORE_FAILED.value,
        DetailType.AGENT_HEARTBEAT.value,
        DetailType.WAL_ARCHIVED.value,
    ],
}
# On-demand backups go to the dispatcher.
BACKUP_REQUEST_PATTERN: dict[str, Any] = {
    "source": [SOURCE_REQUESTS],
    "detail-type": [DetailType.BACKUP_REQUESTED.value],
}
# Silences go to the watchdog (through its own queue): it decides what pages.
SILENCE_PATTERN: dict[str, Any] = {
    "source": [SOURCE_REQUESTS],
    "detail-type": [DetailType.SILENCE_REQUESTED.value, DetailType.UNSILENCE_REQUESTED.value],
}
# Restore requests, approvals, and the agent's restore outcomes go to the restore coordinator.
RESTORE_PATTERN: dict[str, Any] = {
    "source": [SOURCE_REQUESTS, ANY_AGENT],
    "detail-type": [
        DetailType.RESTORE_REQUESTED.value,
        DetailType.RESTORE_APPROVED.value,
        DetailType.RESTORE_STARTED.value,
        DetailType.RESTORE_SUCCEEDED.value,
        DetailType.RESTORE_FAILED.value,
    ],
}


class UnknownEventError(ValueError):
    """An event whose (source, detail-type) is not part of the contract."""


def parse_event(source: str, detail_type: str, detail: dict[str, Any] | str) -> Contract:
    """Parse an event's detail into its contract model; raise with a clear reason when it is not one."""
    model = EVENT_TYPES.get((source_family(source), detail_type)) if source != SOURCE_AGENT else None
    if model is None:
        hint = (
            f" (an agent's events carry its own source, {AGENT_SOURCE_PREFIX}<agent>)" if source == SOURCE_AGENT else ""
        )
        raise UnknownEventError(f"no contract for source={source!r} detail-type={detail_type!r}{hint}")
    if isinstance(detail, str):
        return model.model_validate_json(detail)
    return model.model_validate(detail)


def put_events_entry(event: Contract, bus_name: str, when: datetime | None = None) -> dict[str, Any]:
    """The PutEvents entry for a contract event; source and detail-type come from the model's type (an
    agent's event carries that agent's own source)."""
    source, detail_type = DETAIL_TYPE_OF[type(event)]
    if source == SOURCE_AGENT:
        source = agent_event_source(str(getattr(event, "agent")))  # noqa: B009 - every agent event has one
    entry: dict[str, Any] = {
        "Source": source,
        "DetailType": detail_type,
        "Detail": event.model_dump_json(exclude_none=True),
        "EventBusName": bus_name,
    }
    if when is not None:
        entry["Time"] = when
    return entry


def to_json(event: Contract) -> str:
    return json.dumps(event.model_dump(mode="json", exclude_none=True), sort_keys=True)
