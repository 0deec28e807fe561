"""The pieces every engine's connection config is built from: secret references, the rule that no
setting holds a secret in the clear, and the database arm's common fields.

``backup_agent.engines.config`` composes them into the ``EngineConfig`` union; an engine whose arm lives
in its own module (``pg_physical_config``) builds on this module, so neither imports the other.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from backup_contracts.redaction import inline_credential

PORT = Field(ge=1, le=65535)

BY_REFERENCE = (
    "Fix: give the secret by reference, e.g. {env: DB_PASSWORD} (a variable of the agent's environment),"
    " {file: /etc/backup-agent/db.pass} (mode 0600), {secretsmanager: prod/db, json_key: password} or"
    " {ssm: /prod/db/password}; see docs/agent.md, Secrets"
)
ARGV_FIX = (
    "Fix: argv is visible to every user in the process list: give the tool the secret in a file it reads,"
    " e.g. secret_files: {mongo: {content: 'password: {secret_json}', secret: {secretsmanager: prod/mongo,"
    " json_key: password}}} and --config={file:mongo} in the command, or in `env:` by reference for a tool"
    " that reads a variable"
)


class Model(BaseModel):
    # hide_input_in_errors: a rejected value may be the very secret that had no business in the file
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def strings(value: Any, label: str) -> list[tuple[str, str]]:
    """(where, text) for every string inside ``value``; a mapping's entries are named by their key."""
    if isinstance(value, str | Path):
        return [(label, str(value))]
    if isinstance(value, list | tuple):
        return [pair for item in value for pair in strings(item, label)]
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in strings(item, f"{label} {key}")]
    return []


class EngineModel(Model):
    """An engine's connection model: no setting may carry a secret in the clear (a URL with a password,
    ``password=...``, a token) — the config file is readable by whoever administers the host."""

    @field_validator("*")
    @classmethod
    def _no_inline_secret(cls, value: Any, info: ValidationInfo) -> Any:
        for where, text in strings(value, str(info.field_name)):
            found = inline_credential(text)
            if found:
                fix = ARGV_FIX if info.field_name in ("dump_command", "restore_command") else BY_REFERENCE
                raise ValueError(f"{where} holds {found} in the clear; the config file must not. {fix}")
        return value


class SecretRef(Model):
    """Where a secret lives; exactly one of ``env``, ``file``, ``secretsmanager``, ``ssm``."""

    env: str | None = None
    file: Path | None = None
    secretsmanager: str | None = None
    json_key: str | None = Field(default=None, description="field of a JSON SecretString (secretsmanager only)")
    ssm: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [name for name in ("env", "file", "secretsmanager", "ssm") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a secret reference needs exactly one of env, file, secretsmanager, ssm"
                f" (got {', '.join(given) or 'none'}). Fix: e.g. password: {{env: DB_PASSWORD}}"
            )
        if self.json_key is not None and self.secretsmanager is None:
            raise ValueError("json_key only applies to secretsmanager references")
        return self

    def describe(self) -> str:
        """A safe, human-readable name of the reference (never the value)."""
        if self.env is not None:
            return f"env:{self.env}"
        if self.file is not None:
            return f"file:{self.file}"
        if self.secretsmanager is not None:
            return f"secretsmanager:{self.secretsmanager}" + (f"#{self.json_key}" if self.json_key else "")
        return f"ssm:{self.ssm}"


Resolve = Callable[[SecretRef], str]

_IDENT_OK = re.compile(r"^[^\x00]{1,63}$")


def db_name(value: str) -> str:
    if not _IDENT_OK.match(value) or value.startswith("-"):
        raise ValueError("database name must be 1-63 characters, without NUL, not starting with '-'")
    return value


class DatabaseConfig(EngineModel):
    """One database on a server: where it is, who connects, and the password by reference.

    The arm of each server engine; each sets its own ``engine`` tag and default port and user.
    """

    engine: str
    host: str = "127.0.0.1"
    port: Annotated[int, PORT]
    user: str
    database: str
    password: SecretRef | None = None

    _check_db = field_validator("database")(db_name)

    @field_validator("password", mode="before")
    @classmethod
    def _password_by_reference(cls, value: Any) -> Any:
        if isinstance(value, str | int | float):
            raise ValueError(f"an inline password is refused: the config file would hold the secret. {BY_REFERENCE}")
        return value
