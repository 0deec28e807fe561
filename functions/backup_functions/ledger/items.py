"""Typed models of every item the ledger table holds (docs/ledger.md lists them with their keys).

Items are read through these models, never as ``dict[str, Any]`` by key: a missing or renamed
attribute is a type error, not a silent ``None``. Timestamps (stored as ``ledger.iso`` strings) come
back as timezone-aware datetimes; ``ledger.iso(value)`` gives the stored text again exactly, which the
conditional writes compare against. Attributes a model does not name are ignored on read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backup_contracts import ledger as keys
from backup_functions.ledger.outbox import Owed

# Run and job states. Terminal states are final: the first terminal event of a run wins.
STARTED = "started"
SUCCEEDED = "succeeded"
FAILED = "failed"
UNVERIFIED = "unverified"
DISPATCHED = "dispatched"
TERMINAL_STATES = (SUCCEEDED, FAILED, UNVERIFIED)

# Watch kinds (the sparse by-watch-deadline index): the watchdog's, and the restore coordinator's.
WATCH_RPO = "rpo"
WATCH_START = "start"
WATCH_END = "end"
WATCH_HEARTBEAT = "heartbeat"
WATCH_APPROVAL = "approval"
WATCH_RESTORE = "restore"
WATCH_OUTBOX = "outbox"  # a restore item that owes a side effect (ledger/outbox.py)
WATCH_OFFSITE = "offsite"  # a good backup's off-site copy: the next check, or (at due_by) the copy is late

T = TypeVar("T", bound="LedgerItem")


def target_subject(target: str) -> str:
    """Incident subject for a target (``incident_sk(target_subject(t), kind)``)."""
    return f"target:{target}"


def agent_subject(agent: str) -> str:
    """Incident subject for an agent."""
    return f"agent:{agent}"


class LedgerItem(BaseModel):
    """Base of every item: its key, and its attributes as typed fields."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    pk: str
    sk: str
    item_type: str | None = Field(default=None, alias="type")

    @classmethod
    def parse(cls: type[T], item: dict[str, Any] | None) -> T | None:
        return None if item is None else cls.model_validate(item)

    def stored_fields(self) -> dict[str, Any]:
        """The item's fields as they are stored (timestamps as ``ledger.iso`` text), without empty ones."""
        return {
            name: keys.iso(value) if isinstance(value, datetime) else value
            for name, value in self.model_dump(exclude_none=True, by_alias=True).items()
        }

    @property
    def name(self) -> str:
        """The target, agent or restore id the partition key names (``TARGET#orders`` → ``orders``)."""
        return self.pk.partition("#")[2]


class OwingItem(LedgerItem):
    """An item that may owe side effects of its last state change (``ledger/outbox.py``)."""

    owed: dict[str, Owed] = Field(default_factory=dict)

    def due(self, now: datetime) -> dict[str, Owed]:
        """The entries a tick at ``now`` may perform."""
        return {name: entry for name, entry in self.owed.items() if entry.due(now)}


class WatchedItem(OwingItem):
    """An item that can sit in the sparse by-watch-deadline index (while something is due by a deadline)."""

    watch_shard: str | None = None
    watch_kind: str | None = None
    watch_deadline: datetime | None = None


def _named_by_key(data: Any, field: str) -> Any:
    """Fill ``field`` from the partition key when an item does not carry it (``TARGET#orders`` → orders)."""
    if isinstance(data, dict) and field not in data and "pk" in data:
        return {**data, field: str(data["pk"]).partition("#")[2]}
    return data


class KeptBackup(BaseModel):
    """One member of a target's keep-set: a good backup lifecycle may not expire (tagged ``retention=keep``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    started_at: datetime
    bucket: str
    key: str
    version_id: str | None = None
    tag: str  # its tier's tag value (``<class>-<tier>``), given back when it leaves the keep-set

    @property
    def order(self) -> tuple[str, str]:
        """Newest first sorts by this, descending: the run's start, then its id."""
        return keys.iso(self.started_at), self.run_id


class TargetState(WatchedItem):
    """``TARGET#<t>/STATE``: the latest good backup, the latest run and failure, drills, the RPO watch,
    and the keep-set (the newest ``keep_last`` good backups, and those released from it whose tier tag
    is still owed)."""

    target: str
    agent: str | None = None
    engine: str | None = None
    rpo_s: int | None = None
    first_dispatched_at: datetime | None = None
    last_good_at: datetime | None = None
    last_good_run_id: str | None = None
    last_good_bucket: str | None = None
    last_good_key: str | None = None
    last_good_version_id: str | None = None
    last_good_bytes: int | None = None
    last_good_sha256: str | None = None
    last_run_id: str | None = None
    last_run_at: datetime | None = None
    last_run_state: str | None = None
    last_run_finished_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure_run_id: str | None = None
    last_failure_error: str | None = None
    last_drill_slot: datetime | None = None
    last_drill_restore_id: str | None = None
    last_drill_dispatched_at: datetime | None = None
    last_drill_at: datetime | None = None
    last_drill_ok: bool | None = None
    last_drill_id: str | None = None
    last_drill_rto_s: float | None = None
    last_drill_error: str | None = None
    last_good_drill_at: datetime | None = None
    last_offsite_run_id: str | None = None  # the newest good backup whose off-site copy is verified
    last_offsite_good_at: datetime | None = None  # that backup's end (last_good_at when it is the newest)
    last_offsite_verified_at: datetime | None = None
    keep: list[KeptBackup] = Field(default_factory=list)
    keep_released: dict[str, KeptBackup] = Field(default_factory=dict)  # by run id
    keep_revision: int = 0

    @model_validator(mode="before")
    @classmethod
    def _target_from_key(cls, data: Any) -> Any:
        return _named_by_key(data, "target")

    @property
    def rpo(self) -> timedelta | None:
        return timedelta(seconds=self.rpo_s) if self.rpo_s else None

    @property
    def rpo_deadline(self) -> datetime | None:
        return self.watch_deadline if self.watch_kind == WATCH_RPO else None


class JobRow(WatchedItem):
    """``TARGET#<t>/JOB#<job_id>``: an expected run, from dispatch to its end."""

    job_id: str
    target: str
    agent: str | None = None
    kind: str | None = None
    trigger: str | None = None
    slot: datetime | None = None
    state: str | None = None
    issued_at: datetime | None = None
    deadline: datetime | None = None
    start_deadline: datetime | None = None
    message: str | None = None
    bucket: str | None = None
    key_prefix: str | None = None
    retention_class: str | None = None
    run_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    watch_cleared_at: datetime | None = None
    watch_cleared_reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _names_from_key(cls, data: Any) -> Any:
        data = _named_by_key(data, "target")
        if isinstance(data, dict) and "job_id" not in data and "sk" in data:
            return {**data, "job_id": str(data["sk"]).removeprefix(keys.JOB_SK_PREFIX)}
        return data


class RunRecord(LedgerItem):
    """``TARGET#<t>/RUN#<started>#<run_id>``: what the agent's events said, and what the audit verified."""

    job_id: str
    run_id: str
    target: str
    agent: str
    trigger: str | None = None
    started_at: datetime
    bucket: str | None = None
    key: str | None = None
    state: str | None = None
    finished_at: datetime | None = None
    version_id: str | None = None
    bytes_in: int | None = None
    bytes_stored: int | None = None
    sha256: str | None = None
    s3_checksum_sha256: str | None = None
    engine: str | None = None
    format: str | None = None
    compression: str | None = None
    tool_version: str | None = None
    server_version: str | None = None
    duration_s: float | None = None
    stage: str | None = None
    exit_code: int | None = None
    error: str | None = None
    stderr_tail: str | None = None
    verification: dict[str, Any] = Field(default_factory=dict)
    retention_class: str | None = None
    retention_tier: str | None = None
    retention_tag: str | None = None
    lock_mode: str | None = None
    locked_until: datetime | None = None
    offsite_bucket: str | None = None  # the vault, once the copy is verified there
    offsite_version_id: str | None = None
    offsite_verified_at: datetime | None = None

    @property
    def good(self) -> bool:
        return self.state == SUCCEEDED


class GfsClaim(LedgerItem):
    """``TARGET#<t>/GFS#<tier>#<period>``: the run that won a weekly or monthly retention period."""

    target: str
    period: str
    run_id: str
    started_at: datetime


class AgentState(WatchedItem):
    """``AGENT#<a>/STATE``: the latest heartbeat and the heartbeat watch."""

    agent: str
    version: str | None = None
    targets: list[str] = Field(default_factory=list)
    last_heartbeat_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _agent_from_key(cls, data: Any) -> Any:
        return _named_by_key(data, "agent")


class Incident(OwingItem):
    """``INCIDENTS/<subject>#<kind>``: one open incident; resolved incidents are deleted."""

    subject: str
    kind: str
    opened_at: datetime
    target: str | None = None
    agent: str | None = None
    last_notified_at: datetime | None = None
    notify_count: int = 0
    details: dict[str, Any] = Field(default_factory=dict)
    since: datetime | None = None  # when the subject became overdue (watchdog), else when it failed
    opened_by: str | None = None
    job_id: str | None = None
    source_pk: str | None = None
    source_sk: str | None = None
    resolved_at: datetime | None = None  # resolved; deleted once its "resolved" message is sent
    suppressed_by: str | None = None  # the cause incident (sk) that explains it: recorded, not paged
    silenced_by: str | None = None  # the silence (id) holding its pages: recorded, shown, paged when it ends

    @model_validator(mode="before")
    @classmethod
    def _subject_and_kind_from_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("subject" not in data or "kind" not in data) and "sk" in data:
            subject, _, kind = str(data["sk"]).rpartition("#")
            return {"subject": subject, "kind": kind, **data}
        return data

    @property
    def about_target(self) -> str | None:
        """The target the incident is about (None for an agent's or the pipeline's incident)."""
        if self.subject.startswith(("agent:", "pipeline:")):
            return None
        return self.target or self.subject.removeprefix("target:")

    @property
    def about_agent(self) -> str | None:
        if self.subject.startswith("agent:"):
            return self.subject.removeprefix("agent:")
        return self.agent


class DispatchMarker(LedgerItem):
    """``DISPATCH/STATE``: the ``now`` of the last completed dispatcher tick and the fleet it saw."""

    last_tick_at: datetime | None = None
    fleet_hash: str | None = None


class UnsentJob(LedgerItem):
    """``DISPATCH#UNSENT/<target>#<job_id>``: a job whose send failed, re-sent by the next tick."""

    target: str
    job_id: str
    agent: str
    message: str


class RestoreItem(WatchedItem):
    """``RESTORE#<id>/STATE``: a restore request or drill from request to its end (restore/ state machine)."""

    restore_id: str
    kind: str = "restore"  # restore | drill
    state: str
    target: str = ""
    destination: str | None = None
    mode: str | None = None
    selector: dict[str, Any] | None = None
    requested_by: str = "unknown"
    requested_by_arn: str | None = None  # the caller AWS authenticated (approvals URL); None: from the bus
    reason: str = ""
    dry_run: bool = False
    fingerprint: str | None = None
    requested_at: datetime | None = None
    updated_at: datetime | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    source: dict[str, Any] | None = None
    source_run_id: str | None = None
    agent: str | None = None
    requires_approval: bool = False
    approval_deadline: datetime | None = None
    approved_by: str | None = None  # the approver's principal ARN, as AWS authenticated it
    approved_at: datetime | None = None
    notified_at: datetime | None = None
    reason_code: str | None = None
    rejection: str | None = None
    job_id: str | None = None
    job: str | None = None  # the Job JSON sent (without its presigned URL)
    deadline: datetime | None = None
    job_sent_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    verification: dict[str, Any] | None = None
    safety_backup_run_id: str | None = None
    stage: str | None = None
    error: str | None = None
    destination_touched: bool | None = None
    stderr_tail: str | None = None
    interrupted_at: datetime | None = None
    last_error: str | None = None

    @property
    def drill(self) -> bool:
        return self.kind == "drill"


def stored(moment: datetime | None) -> str | None:
    """The text a timestamp is stored as (what a conditional write compares with)."""
    return keys.iso(moment) if moment is not None else None
