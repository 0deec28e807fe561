"""The fleet configuration: agents, their targets, schedules, RPO, retention and protection.

One versioned YAML file (``fleet.yaml``, named in cdk.json's context) is the source of truth for
the stack and the local pipeline. ``load_fleet`` validates it and raises ``FleetConfigError`` whose
message names the file, the entry and the fix.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, ValidationError, field_validator

from backup_contracts.approvers import pattern_problem
from backup_contracts.naming import NAME_PATTERN
from backup_contracts.schedule import Schedule, ScheduleError, format_duration, parse_duration

ENGINES = ("postgresql", "mariadb", "sqlite", "files", "command")
DEFAULT_KEEP_LAST = 3
KEEP_LAST_MAX = 100  # the keep-set lives in the target's ledger item (400 KB at most)
OBJECT_LOCK_MODES = ("governance", "compliance")
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Duration = Annotated[str, StringConstraints(pattern=r"^\d+\s*[mhd]$")]


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


class ObjectLock(_Model):
    """S3 Object Lock on the backup bucket (WORM), on by default, with no bucket default retention:
    the audit sets each verified backup's retention to its start + its GFS tier's days."""

    enabled: bool = True
    mode: Literal["governance", "compliance"] = "governance"

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, value: Any) -> Any:
        mode = value.lower() if isinstance(value, str) else value
        if mode not in OBJECT_LOCK_MODES:
            raise ValueError(
                f"unknown Object Lock mode {value!r}. Fix: use governance (the default: a principal granted"
                " s3:BypassGovernanceRetention can still shorten a retention in an emergency) or compliance"
                " (nobody can shorten it, not even the account root)"
            )
        return mode

    @property
    def s3_mode(self) -> Literal["GOVERNANCE", "COMPLIANCE"]:
        """The mode as S3 spells it (PutObjectRetention, HeadObject's ObjectLockMode)."""
        return "COMPLIANCE" if self.mode == "compliance" else "GOVERNANCE"


class DrillConfig(_Model):
    schedule: str
    destination: Name


class Target(_Model):
    name: Name
    engine: str
    schedule: str
    timezone: str = "UTC"
    rpo: Duration
    retention: Name = "standard"
    protected: bool = False
    restore_to: list[Name] = Field(default_factory=list, description="other targets it may be cloned into")
    drill: DrillConfig | None = None
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve restores into this protected target (principal ARN patterns, see"
        " backup_contracts.approvers); replaces pipeline.approvers for this target",
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"unknown engine {value!r}. Fix: use one of: {', '.join(ENGINES)}")
        return value

    @property
    def parsed_schedule(self) -> Schedule:
        return Schedule(self.schedule, self.timezone)

    @property
    def rpo_delta(self) -> timedelta:
        return parse_duration(self.rpo)


class Agent(_Model):
    name: Name
    targets: list[Target] = Field(min_length=1)


class PipelineSettings(_Model):
    name: Name = "backup-pipeline"
    alert_emails: list[EmailStr] = Field(default_factory=list)
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve restores into protected targets (principal ARN patterns, see"
        " backup_contracts.approvers)",
    )
    object_lock: ObjectLock = ObjectLock()
    dispatcher_interval_minutes: int = Field(default=5, ge=1, le=60)
    watchdog_interval_minutes: int = Field(default=5, ge=1, le=60)
    reminder_interval_minutes: int = Field(default=60, ge=5)
    heartbeat_timeout_minutes: int = Field(default=30, ge=5)
    approval_timeout_minutes: int = Field(default=60, ge=5)
    job_deadline_minutes: int = Field(default=120, ge=5, description="a run not ended by then is stuck")
    ledger_ttl_days: int = Field(default=400, ge=30, description="at least the longest retention of any class")


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

    def approvers_of(self, target: Target) -> tuple[str, ...]:
        """Who may approve a restore into ``target``: its own ``approvers``, else the pipeline's."""
        return tuple(target.approvers or self.pipeline.approvers)


def _entry_label(raw: Any, loc: tuple[int | str, ...]) -> str:
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


def _retention_errors(fleet: Fleet) -> list[str]:
    """The ledger must outlive every backup: once a run's rows expire, a restore answers no-backup."""
    kept = [
        (days, name, tier)
        for name, retention_class in sorted(fleet.retention_classes.items())
        for tier, days in retention_class.tiers().items()
    ]
    if not kept:
        return []
    days, name, tier = max(kept)
    ttl = fleet.pipeline.ledger_ttl_days
    if ttl >= days:
        return []
    return [
        f"pipeline > ledger_ttl_days: {ttl} is shorter than the longest retention, retention_classes > {name!r} >"
        f" {tier}_days: {days}, so ledger rows would expire while their backups are still kept and a restore"
        f" would answer no-backup. Fix: set pipeline.ledger_ttl_days to at least {days}, or shorten that retention"
    ]


def _semantic_errors(fleet: Fleet) -> list[str]:
    errors: list[str] = _retention_errors(fleet)
    seen_agents: set[str] = set()
    seen_targets: dict[str, str] = {}
    for ai, agent in enumerate(fleet.agents):
        if agent.name in seen_agents:
            errors.append(f"agents[{ai}] {agent.name!r}: duplicate agent name. Fix: give every agent a unique name")
        seen_agents.add(agent.name)
        for ti, target in enumerate(agent.targets):
            where = f"agents[{ai}] {agent.name!r} > targets[{ti}] {target.name!r}"
            if target.name in seen_targets:
                errors.append(
                    f"{where}: duplicate target name (also on agent {seen_targets[target.name]!r})."
                    " Fix: target names are unique across the fleet; rename one"
                )
            seen_targets[target.name] = agent.name
            try:
                interval = target.parsed_schedule.max_interval()
            except ScheduleError as exc:
                errors.append(f"{where} > schedule: {exc}")
                continue
            if target.rpo_delta < interval:
                errors.append(
                    f"{where}: rpo {target.rpo} is shorter than the schedule's longest interval"
                    f" ({format_duration(interval)}), so every run would page. Fix: raise rpo to at least"
                    f" {format_duration(interval)} (plus the time a backup takes) or schedule more often"
                )
            if target.retention not in fleet.retention_classes:
                errors.append(
                    f"{where} > retention: unknown retention class {target.retention!r}."
                    f" Fix: use one of {sorted(fleet.retention_classes)} or declare it under retention_classes"
                )
            if target.drill is not None:
                try:
                    Schedule(target.drill.schedule, target.timezone)
                except ScheduleError as exc:
                    errors.append(f"{where} > drill > schedule: {exc}")
    for agent, target in fleet.targets():
        for other in [*target.restore_to, *([target.drill.destination] if target.drill else [])]:
            if other not in seen_targets:
                errors.append(
                    f"agent {agent.name!r} > target {target.name!r}: restore destination {other!r} is not a"
                    " target of this fleet. Fix: declare it as a target or remove it"
                )
            elif fleet.target(other)[1].engine != target.engine:
                errors.append(
                    f"agent {agent.name!r} > target {target.name!r}: restore destination {other!r} uses engine"
                    f" {fleet.target(other)[1].engine!r}, not {target.engine!r}."
                    " Fix: pick a destination of the same engine"
                )
    return errors + _drill_errors(fleet) + _approver_errors(fleet)


def _drill_errors(fleet: Fleet) -> list[str]:
    """A drill replaces its destination with the latest backup and then removes it: only a scratch target
    of its own may take it — never the drilled target, a protected one, or where restores are cloned to."""
    names = {target.name for _, target in fleet.targets()}
    cloned_into = {dest: source.name for _, source in fleet.targets() for dest in source.restore_to}
    errors: list[str] = []
    for ai, agent in enumerate(fleet.agents):
        for ti, target in enumerate(agent.targets):
            if target.drill is None or target.drill.destination not in names:
                continue  # an unknown destination is reported with the restore destinations
            where = f"agents[{ai}] {agent.name!r} > targets[{ti}] {target.name!r} > drill > destination"
            destination = target.drill.destination
            scratch = (
                f"Fix: declare a scratch target of engine {target.engine} (e.g. {target.name}-drill, on the host"
                " that should run the drill) and drill into it"
            )
            if destination == target.name:
                errors.append(
                    f"{where}: {destination!r} is the drilled target itself; the drill would replace the data it"
                    f" checks and then remove it. {scratch}"
                )
                continue
            if fleet.target(destination)[1].protected:
                errors.append(
                    f"{where}: {destination!r} is a protected target; a drill would overwrite it every"
                    f" {target.drill.schedule} without an approval. {scratch}"
                )
            if destination in cloned_into:
                errors.append(
                    f"{where}: {destination!r} is where restores of {cloned_into[destination]!r} are cloned to"
                    f" (its restore_to); a drill would replace such a clone and then remove it. {scratch}"
                )
    return errors


def _approver_errors(fleet: Fleet) -> list[str]:
    """Approver patterns must be able to match a caller; a protected target must have someone to approve."""
    errors = [
        f"pipeline > approvers[{i}]: {problem}"
        for i, pattern in enumerate(fleet.pipeline.approvers)
        if (problem := pattern_problem(pattern))
    ]
    for ai, agent in enumerate(fleet.agents):
        for ti, target in enumerate(agent.targets):
            where = f"agents[{ai}] {agent.name!r} > targets[{ti}] {target.name!r}"
            errors += [
                f"{where} > approvers[{i}]: {problem}"
                for i, pattern in enumerate(target.approvers)
                if (problem := pattern_problem(pattern))
            ]
            if target.approvers and not target.protected:
                errors.append(
                    f"{where} > approvers: only restores into a protected target need an approval."
                    " Fix: set protected: true or remove approvers"
                )
            if target.protected and not fleet.approvers_of(target):
                errors.append(
                    f"{where}: protected target with no approvers, so no restore into it could ever be approved."
                    " Fix: list who may approve (principal ARN patterns, docs/fleet.md) under pipeline > approvers"
                    " or the target's approvers"
                )
    return errors


def parse_fleet(raw: Any, source: str = "fleet config") -> Fleet:
    if not isinstance(raw, dict):
        raise FleetConfigError(f"{source}: expected a mapping with version, retention_classes and agents")
    try:
        fleet = Fleet.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {len(exc.errors())} problem(s):"]
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden" and tuple(err["loc"][-2:]) == ("object_lock", "days"):
                message = (
                    "the bucket no longer has a default retention: the audit sets each backup's retention from"
                    " its GFS tier (retention_classes). Fix: remove days"
                )
            elif err["type"] == "extra_forbidden":
                message = "unknown key. Fix: remove it or check its spelling"
            elif err["type"] == "missing":
                message = "required key is missing. Fix: add it"
            elif err["type"] == "string_pattern_mismatch" and err["loc"][-1] in ("name", "retention"):
                message = (
                    f"{err['input']!r} is not a valid name. Fix: use lower-case letters, digits and '-',"
                    " at most 40 characters, starting and ending with a letter or digit"
                )
            elif err["type"] == "string_pattern_mismatch" and err["loc"][-1] == "rpo":
                message = f"{err['input']!r} is not a duration. Fix: write e.g. 30m, 26h or 7d"
            lines.append(f"  - {_entry_label(raw, err['loc'])}: {message}")
        raise FleetConfigError("\n".join(lines)) from None
    errors = _semantic_errors(fleet)
    if errors:
        raise FleetConfigError("\n".join([f"{source}: {len(errors)} problem(s):", *[f"  - {e}" for e in errors]]))
    return fleet


def load_fleet(path: str | Path) -> Fleet:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetConfigError(
            f"{path}: fleet file not found."
            " Fix: create it (the repository's fleet.yaml is a worked example; see docs/fleet.md)"
        ) from None
    except yaml.YAMLError as exc:
        raise FleetConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_fleet(raw, str(path))
