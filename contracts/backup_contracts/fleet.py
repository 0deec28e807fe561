"""The fleet configuration: agents, their targets, schedules, RPO, retention and protection.

One versioned YAML file (``fleet.yaml``, named in cdk.json's context) is the source of truth for
the stack and the local pipeline. ``load_fleet`` validates it and raises ``FleetConfigError`` whose
message names the file, the entry and the fix.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, ValidationError, field_validator
from pydantic_core.core_schema import ValidationInfo

from backup_contracts.fleet_alerts import AlertRouting
from backup_contracts.fleet_checks import Loc, Problem, fleet_problems
from backup_contracts.naming import NAME_PATTERN
from backup_contracts.schedule import MAX_DURATION, Schedule, ScheduleError, bounded_duration, parse_duration
from backup_contracts.yamlfile import YamlDocument, YamlProblem, read_yaml

ENGINES = ("postgresql", "postgresql-physical", "mariadb", "sqlite", "files", "command")
# Engines whose targets archive WAL continuously and restore to a point in time (docs/pitr.md).
PITR_ENGINES = ("postgresql-physical",)
DEFAULT_WAL_RPO = "5m"
DEFAULT_KEEP_LAST = 3
WEEK_MINUTES = 7 * 24 * 60  # the longest reminder, heartbeat, approval and job timeout
KEEP_LAST_MAX = 100  # the keep-set lives in the target's ledger item (400 KB at most)
OBJECT_LOCK_MODES = ("governance", "compliance")
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Duration = Annotated[str, StringConstraints(pattern=r"^\d+\s*[mhd]$")]
MAX_RTO = timedelta(days=7)  # a drill longer than the longest job deadline times out before it could be measured


class FleetConfigError(ValueError):
    """The fleet file is wrong; the message lists every problem with its entry and fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionClass(_Model):
    """Grandfather-father-son: the first good backup of a week/month is kept longer.

    Whatever their age, the newest ``keep_last`` good backups of every target are never expired: the
    audit tags them ``retention=keep``, which no lifecycle rule matches, so a target that fails for
    longer than every tier's days still has its last good backups.
    """

    daily_days: int = Field(ge=1, le=36500)
    weekly_days: int | None = Field(default=None, ge=1, le=36500)
    monthly_days: int | None = Field(default=None, ge=1, le=36500)
    keep_last: int = DEFAULT_KEEP_LAST

    @field_validator("keep_last")
    @classmethod
    def _keeps_some(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"keep_last {value} would let lifecycle expire every backup of a target that keeps failing."
                f" Fix: keep at least 1 (the default is {DEFAULT_KEEP_LAST})"
            )
        if value > KEEP_LAST_MAX:
            raise ValueError(
                f"keep_last {value} is more than {KEEP_LAST_MAX}, the most one target's ledger item holds."
                f" Fix: use at most {KEEP_LAST_MAX}; older backups are kept by their tier's days"
            )
        return value

    def tiers(self) -> dict[str, int]:
        tiers = {"daily": self.daily_days}
        if self.weekly_days:
            tiers["weekly"] = self.weekly_days
        if self.monthly_days:
            tiers["monthly"] = self.monthly_days
        return tiers


def _lock_mode(value: Any) -> Any:
    mode = value.lower() if isinstance(value, str) else value
    if mode not in OBJECT_LOCK_MODES:
        raise ValueError(
            f"unknown Object Lock mode {value!r}. Fix: use governance (a principal granted"
            " s3:BypassGovernanceRetention can still shorten a retention in an emergency) or compliance"
            " (nobody can shorten it, not even the account root)"
        )
    return mode


class ObjectLock(_Model):
    """S3 Object Lock on the backup bucket (WORM), on by default, with no bucket default retention:
    the audit sets each verified backup's retention to its start + its GFS tier's days."""

    enabled: bool = True
    mode: Literal["governance", "compliance"] = "governance"

    _known_mode = field_validator("mode", mode="before")(_lock_mode)

    @property
    def s3_mode(self) -> Literal["GOVERNANCE", "COMPLIANCE"]:
        """The mode as S3 spells it (PutObjectRetention, HeadObject's ObjectLockMode)."""
        return "COMPLIANCE" if self.mode == "compliance" else "GOVERNANCE"


def _valid_schedule(value: str) -> str:
    try:
        Schedule(value)
    except ScheduleError as exc:
        raise ValueError(str(exc)) from None
    return value


def _valid_timezone(value: str) -> str:
    try:
        Schedule("rate(1 day)", value)
    except ScheduleError as exc:
        raise ValueError(str(exc)) from None
    return value


class DrillConfig(_Model):
    schedule: str
    destination: Name
    source: Literal["primary", "offsite"] = Field(
        default="primary",
        description="offsite: the drill restores the latest backup with a verified copy from the vault,"
        " proving the off-site path (needs pipeline.offsite)",
    )

    _check_schedule = field_validator("schedule")(_valid_schedule)


class Target(_Model):
    name: Name
    engine: str
    schedule: str
    timezone: str = "UTC"
    rpo: Duration
    rto: Duration | None = Field(
        default=None,
        description="recovery time objective: the longest a restore drill may take, from its dispatch (queue"
        " wait included) to the verified end; needs a drill",
    )
    retention: Name = "standard"
    protected: bool = False
    restore_to: list[Name] = Field(default_factory=list, description="other targets it may be cloned into")
    drill: DrillConfig | None = None
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve restores into this protected target (principal ARN patterns, see"
        " backup_contracts.approvers); replaces pipeline.approvers for this target",
    )
    rpo_needs_offsite: bool = Field(
        default=False,
        description="a backup counts toward the RPO only once its off-site copy is verified (needs pipeline.offsite)",
    )
    wal_rpo: Duration | None = Field(
        default=None,
        description="postgresql-physical only: the longest archived WAL may lag the server (default 5m)",
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"unknown engine {value!r}. Fix: use one of: {', '.join(ENGINES)}")
        return value

    _check_schedule = field_validator("schedule")(_valid_schedule)
    _check_timezone = field_validator("timezone")(_valid_timezone)

    @field_validator("rpo", "wal_rpo")
    @classmethod
    def _bounded_rpo(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else bounded_duration(str(info.field_name), value, MAX_DURATION)

    @property
    def pitr(self) -> bool:
        """The target archives WAL continuously and restores to any second (``engine: postgresql-physical``)."""
        return self.engine in PITR_ENGINES

    @property
    def wal_rpo_delta(self) -> timedelta | None:
        """How long archived WAL may lag the server before the watchdog alerts; None without PITR."""
        return parse_duration(self.wal_rpo or DEFAULT_WAL_RPO) if self.pitr else None

    @field_validator("rto")
    @classmethod
    def _bounded_rto(cls, value: str | None) -> str | None:
        return None if value is None else bounded_duration("rto", value, MAX_RTO)

    @property
    def rto_delta(self) -> timedelta | None:
        return None if self.rto is None else parse_duration(self.rto, MAX_RTO)

    @property
    def parsed_schedule(self) -> Schedule:
        return Schedule(self.schedule, self.timezone)

    @property
    def rpo_delta(self) -> timedelta:
        return parse_duration(self.rpo)


class Agent(_Model):
    name: Name
    targets: list[Target] = Field(min_length=1)


AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
MAX_OFFSITE_LAG = timedelta(days=2)


class OffsiteVault(_Model):
    """A second bucket (the vault) in another region, ideally another account, that S3 replication copies
    every backup into. A backup's off-site copy counts once the pipeline has read it back from the vault
    (size, run id, checksums); a good backup without one after ``lag`` opens an "off-site copy missing"
    incident. Nothing in the primary account can delete from the vault or shorten what it keeps."""

    region: Region = Field(description="the vault's region (e.g. eu-central-1); the vault stack deploys there")
    account: AccountId = Field(description="the vault's account; best a different one from the primary's")
    primary_account: AccountId = Field(
        description="the account the pipeline stack deploys into: the vault trusts its replication role and"
        " lets its functions read, and denies every deleting or retention-shortening call from it"
    )
    lag: Duration = Field(default="1h", description="how long a good backup may go without a verified off-site copy")
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="how long the vault keeps (and Object-Lock retains) each copy; default: the longest tier"
        " of any retention class",
    )
    object_lock_mode: Literal["governance", "compliance"] = Field(
        default="compliance", description="compliance: nobody, not even the vault account's root, can shorten it"
    )
    replication_time_control: bool = Field(
        default=False,
        description="S3 Replication Time Control: 99.99 % of objects within 15 minutes, at an extra cost per GB",
    )

    _known_mode = field_validator("object_lock_mode", mode="before")(_lock_mode)

    @field_validator("lag")
    @classmethod
    def _bounded_lag(cls, value: str) -> str:
        return bounded_duration("lag", value, MAX_OFFSITE_LAG)

    @property
    def lag_delta(self) -> timedelta:
        return parse_duration(self.lag, MAX_OFFSITE_LAG)

    @property
    def s3_mode(self) -> Literal["GOVERNANCE", "COMPLIANCE"]:
        return "COMPLIANCE" if self.object_lock_mode == "compliance" else "GOVERNANCE"


class PipelineSettings(_Model):
    name: Name = "backup-pipeline"
    alert_emails: list[EmailStr] = Field(default_factory=list)
    alerts: AlertRouting = Field(
        default_factory=AlertRouting, description="webhooks, chat channels and the canary (fleet_alerts.py)"
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve restores into protected targets (principal ARN patterns, see"
        " backup_contracts.approvers)",
    )
    object_lock: ObjectLock = ObjectLock()
    offsite: OffsiteVault | None = Field(
        default=None, description="an off-site vault that every backup is replicated into (docs/deploy.md)"
    )
    dispatcher_interval_minutes: int = Field(default=5, ge=1, le=60)
    watchdog_interval_minutes: int = Field(default=5, ge=1, le=60)
    reminder_interval_minutes: int = Field(default=60, ge=5, le=WEEK_MINUTES)
    heartbeat_timeout_minutes: int = Field(default=30, ge=5, le=WEEK_MINUTES)
    approval_timeout_minutes: int = Field(default=60, ge=5, le=WEEK_MINUTES)
    job_deadline_minutes: int = Field(
        default=120, ge=5, le=WEEK_MINUTES, description="a run not ended by then is stuck"
    )
    ledger_ttl_days: int = Field(
        default=400, ge=30, le=36500, description="at least the longest retention of any class"
    )


class Fleet(_Model):
    version: Literal[1]
    pipeline: PipelineSettings = PipelineSettings()
    retention_classes: dict[Name, RetentionClass]
    agents: list[Agent] = Field(min_length=1)

    def targets(self) -> list[tuple[Agent, Target]]:
        return [(agent, target) for agent in self.agents for target in agent.targets]

    def target(self, name: str) -> tuple[Agent, Target]:
        for agent, target in self.targets():
            if target.name == name:
                return agent, target
        raise KeyError(name)

    def vault_retention_days(self) -> int:
        """How long the vault keeps each copy: ``offsite.retention_days``, else the longest tier of any class."""
        offsite = self.pipeline.offsite
        if offsite is not None and offsite.retention_days is not None:
            return offsite.retention_days
        return max(days for c in self.retention_classes.values() for days in c.tiers().values())

    def approvers_of(self, target: Target) -> tuple[str, ...]:
        """Who may approve a restore into ``target``: its own ``approvers``, else the pipeline's."""
        return tuple(target.approvers or self.pipeline.approvers)


def _entry_label(raw: Any, loc: Loc) -> str:
    """agents[0] 'db-1' > targets[2] 'orders' > schedule — names the entry the way a person finds it."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and isinstance(node[item], dict) else None
            parts[-1] = f"{parts[-1]}[{item}]" + (f" {name!r}" if name else "")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return " > ".join(parts) or "(top level)"


def _schema_message(err: Any) -> str:
    message = str(err["msg"]).removeprefix("Value error, ")
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden" and loc[-2:] == ("object_lock", "days"):
        return (
            "the bucket no longer has a default retention: the audit sets each backup's retention from"
            " its GFS tier (retention_classes). Fix: remove days"
        )
    if err["type"] == "extra_forbidden":
        return "unknown key. Fix: remove it or check its spelling"
    if err["type"] == "missing":
        return "required key is missing. Fix: add it"
    if err["type"] == "literal_error":
        return f"{err['input']!r} is not allowed here. Fix: use one of {(err.get('ctx') or {}).get('expected', '')}"
    if err["type"] == "string_pattern_mismatch" and loc[-1] in ("name", "retention"):
        return (
            f"{err['input']!r} is not a valid name. Fix: use lower-case letters, digits and '-',"
            " at most 40 characters, starting and ending with a letter or digit"
        )
    if err["type"] == "string_pattern_mismatch" and loc[-1] == "rpo":
        return f"{err['input']!r} is not a duration. Fix: write e.g. 30m, 26h or 7d"
    if err["type"] in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        bound = next(iter((err.get("ctx") or {}).values()), "")
        word = "most" if err["type"].startswith("less") else "least"
        return f"{err['input']!r} is out of range. Fix: use at {word} {bound} (docs/fleet.md lists every bound)"
    return message


def _report(source: str, raw: Any, problems: list[Problem], doc: YamlDocument | None) -> FleetConfigError:
    """``source: N problem(s):`` then one ``source:line: entry: problem. Fix: ...`` per problem."""
    located = sorted(
        ((doc.line_of(loc) if doc is not None else None, loc, message) for loc, message in problems),
        key=lambda item: item[0] or 0,
    )
    lines = [f"{source}: {len(problems)} problem(s):"]
    for line, loc, message in located:
        at = f"{source}:{line}: " if line else ""
        lines.append(f"  - {at}{_entry_label(raw, loc)}: {message}")
    return FleetConfigError("\n".join(lines))


def parse_fleet(raw: Any, source: str = "fleet config", *, document: YamlDocument | None = None) -> Fleet:
    """Validate ``raw``; ``document`` (from ``read_yaml``) lets every problem name its line."""
    if not isinstance(raw, dict):
        raise FleetConfigError(f"{source}: expected a mapping with version, retention_classes and agents")
    try:
        fleet = Fleet.model_validate(raw)
    except ValidationError as exc:
        schema: list[Problem] = [(tuple(err["loc"]), _schema_message(err)) for err in exc.errors()]
        raise _report(source, raw, schema, document) from None
    problems = fleet_problems(fleet)
    if problems:
        raise _report(source, raw, problems, document)
    return fleet


def load_fleet(path: str | Path) -> Fleet:
    path = Path(path)
    try:
        document = read_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetConfigError(
            f"{path}: fleet file not found."
            " Fix: create it (the repository's fleet.yaml is a worked example; see docs/fleet.md)"
        ) from None
    except YamlProblem as exc:
        found = [f"  - {path}:{line}: {text}" if line else f"  - {path}: {text}" for line, text in exc.problems]
        raise FleetConfigError("\n".join([f"{path}: {len(found)} problem(s):", *found])) from None
    return parse_fleet(document.data, str(path), document=document)
