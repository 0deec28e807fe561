"""The agent's local config file (YAML, one per host), validated with errors that name the line and the fix.

Targets map a target name (as in the fleet file) to how this host connects to it; the entries are
the engines' connection models (``backup_agent.engines.config``), with secrets by reference only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, field_validator

from backup_agent.engines.config import EngineConfig
from backup_contracts.naming import NAME_PATTERN, agent_prefix
from backup_contracts.yamlfile import YamlDocument, YamlProblem, read_yaml

DEFAULT_CONFIG_PATH = Path("/etc/backup-agent/agent.yaml")
CONFIG_ENV = "BACKUP_AGENT_CONFIG"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
KMS_KEY_ARN_PATTERN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$"


class ConfigError(Exception):
    """The config file is unusable; ``problems`` lists each one with its line and fix."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(
            f"{path}: " + "; ".join(problems)
            if len(problems) == 1
            else f"{path}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The default compression: zstd parameters chosen for database dumps (docs/benchmarks.md, "Choosing
# the default compression"). zstd's double-fast strategy, as at level 3, with a 1 MiB window, a
# 2^17-entry hash table, a 2^16-entry chain table and 6-byte minimum matches. On the benchmark
# dumps it stores 0.7-1.3 % less than pg_dump's zlib-6 and level 3, for ~85 % of level 3's CPU;
# level 1 stores 7 % more. The names are the zstd CLI's, so `zstd --zstd=<describe()>` reproduces it.
DUMP_TUNED_ZSTD: dict[str, int] = {
    "strategy": 2,
    "window_log": 20,
    "hash_log": 17,
    "chain_log": 16,
    "search_log": 1,
    "min_match": 6,
    "target_length": 0,
}
_ZSTD_CLI_NAMES = {
    "strategy": "strat",
    "window_log": "wlog",
    "hash_log": "hlog",
    "chain_log": "clog",
    "search_log": "slog",
    "min_match": "mml",
    "target_length": "tlen",
}


class Compression(_Model):
    level: int | None = Field(
        default=None,
        ge=1,
        le=22,
        description="a standard zstd level; unset: parameters tuned for database dumps, which store less than"
        " pg_dump's zlib-6 and zstd level 3 for less CPU than level 3 (docs/benchmarks.md)",
    )
    threads: int = Field(default=0, ge=0, le=256, description="zstd worker threads; 0 = all cores")

    @property
    def zstd_threads(self) -> int:
        """The ``zstandard`` ``threads`` argument: -1 means one per core."""
        return -1 if self.threads == 0 else self.threads

    def describe(self) -> str:
        """How the object was compressed, for its metadata and manifest (always starts with ``zstd``)."""
        if self.level is not None:
            return f"zstd-{self.level}"
        return "zstd --zstd=" + ",".join(f"{_ZSTD_CLI_NAMES[k]}={v}" for k, v in DUMP_TUNED_ZSTD.items())


class UploadSettings(_Model):
    parts_in_flight: int = Field(
        default=3,
        ge=1,
        le=64,
        description="parts uploading at once (memory ~ this x part); 3 keeps the agent under 96 MiB"
        " (docs/benchmarks.md) at the same wall time as 4",
    )
    max_attempts: int = Field(default=5, ge=1, le=20, description="attempts per S3 request (standard retry mode)")


class AgentConfig(_Model):
    agent: Name
    region: str = Field(min_length=1)
    queue_url: str = Field(pattern=r"^https?://\S+$")
    bus_name: str = Field(min_length=1)
    kms_key_id: str = Field(
        pattern=KMS_KEY_ARN_PATTERN,
        description="the pipeline key's full ARN (stack output KeyArn): the bucket policy refuses uploads"
        " that name the key by id or alias",
    )
    bucket: str | None = Field(default=None, description="bucket for one-off `backup TARGET` runs")
    retention_class: Name = Field(default="standard", description="retention class of one-off runs")
    compression: Compression = Field(default_factory=Compression)
    upload: UploadSettings = Field(default_factory=UploadSettings)
    concurrency: int = Field(default=1, ge=1, le=16)
    state_dir: Path = Path("/var/lib/backup-agent")
    heartbeat_minutes: float = Field(
        default=5, ge=1, le=60, description="Agent Heartbeat interval: at least a minute, at most an hour"
    )
    visibility_timeout_s: int = Field(default=300, ge=30, le=43200, description="visibility kept while a job runs")
    targets: dict[Name, Any] = Field(min_length=1)

    @field_validator("targets")
    @classmethod
    def _entries_are_mappings(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, entry in value.items():
            if not isinstance(entry, dict) and not isinstance(entry, BaseModel):
                raise ValueError(f"target {name!r} must be a mapping with at least `engine:`")
        return value

    @property
    def prefix(self) -> str:
        return agent_prefix(self.agent)


_TARGET = TypeAdapter(EngineConfig)  # one target's connection model, chosen by its `engine:`


# --------------------------------------------------------------------------- messages


def _fix(err: dict[str, Any]) -> str:
    kind = err["type"]
    field = str(err["loc"][-1]) if err["loc"] else "value"
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return f"add `{field}:`"
    if kind == "extra_forbidden":
        return f"remove `{field}` (unknown setting) or fix its spelling"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        expected = ctx.get("expected_tags", "")
        return f"set `engine:` to one of {expected}" if expected else "set `engine:`"
    if kind == "literal_error":
        return f"use one of {ctx.get('expected', '')}"
    if kind == "string_pattern_mismatch" and field == "kms_key_id":
        return "use the key's full ARN, arn:aws:kms:<region>:<account>:key/<id> (the stack output KeyArn)"
    if kind == "string_pattern_mismatch":
        if field == "agent" or (len(err["loc"]) == 2 and err["loc"][0] == "targets"):
            return "use lowercase letters, digits and '-', at most 40 characters"
        return f"match the pattern {ctx.get('pattern', '')}"
    if kind.startswith(("greater", "less")):
        bound = next(iter(ctx.values()), None)
        if bound is not None:
            return f"use a value of at {'most' if kind.startswith('less') else 'least'} {bound}"
        return "use a value in the allowed range"
    return "correct the value"


def _describe(err: dict[str, Any], document: YamlDocument) -> str:
    line = document.line_of(tuple(err["loc"]))
    where = " > ".join(str(p) for p in err["loc"]) or "(top level)"
    at = f"line {line}: " if line else ""
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        message = "required setting is missing"
    if "Fix:" in message:
        return f"{at}{where}: {message}"
    return f"{at}{where}: {message}. Fix: {_fix(err)}"


# --------------------------------------------------------------------------- loading


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def parse_config(text: str, source: str | Path = "<config>") -> AgentConfig:
    try:
        document = read_yaml(text)
    except YamlProblem as exc:
        raise ConfigError(source, [f"line {line}: {p}" if line else p for line, p in exc.problems]) from None
    data = document.data
    if not isinstance(data, dict):
        raise ConfigError(source, ["expected a mapping with agent, region, queue_url, bus_name, kms_key_id, targets"])
    problems: list[str] = []
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(dict(e), document) for e in exc.errors())
        config = None
    targets = data.get("targets")
    parsed_targets: dict[str, Any] = {}
    if isinstance(targets, dict):
        for name, entry in targets.items():
            try:
                parsed_targets[name] = _TARGET.validate_python(entry)
            except ValidationError as exc:
                for e in exc.errors():
                    err = dict(e)
                    err["loc"] = ("targets", name, *e["loc"])
                    problems.append(_describe(err, document))
    if problems or config is None:
        raise ConfigError(source, problems)
    if parsed_targets:
        config = config.model_copy(update={"targets": parsed_targets})
    return config


def load_config(path: str | Path | None = None) -> AgentConfig:
    resolved = config_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            resolved, [f"cannot read the config file: {exc.strerror}. Fix: create it or pass --config"]
        ) from exc
    return parse_config(text, resolved)
