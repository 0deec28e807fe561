"""Per-engine connection config: how the agent reaches one target on its host.

Each model is one arm of the ``EngineConfig`` union, discriminated by its literal ``engine`` field,
so a YAML mapping such as ``{engine: postgresql, database: app, password: {env: APP_PGPASSWORD}}``
validates into ``PostgresConfig``.

Secrets are never stored here, only ``SecretRef`` references (``{env: VAR}``, ``{file: /path}``,
``{secretsmanager: id, json_key: field?}``, ``{ssm: /name}``).

Resolution contract (chosen deliberately, see ``backup_agent.engines.build_engine``): the engine
factory takes a ``resolve: Callable[[SecretRef], str]`` (``backup_agent.secrets`` provides one) and
engines call it **lazily, each time** they start a dump, a restore or a check. A long-running agent
therefore picks up rotated passwords, and this package never imports the secrets module (nor boto3)
at import time. Every value obtained from ``resolve`` is masked in the engine's stderr tails.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from backup_agent.engines.config_base import (
    ARGV_FIX,
    BY_REFERENCE,
    PORT,
    DatabaseConfig,
    EngineModel,
    Model,
    Resolve,
    SecretRef,
    db_name,
    strings,
)
from backup_agent.engines.pg_physical_config import PostgresPhysicalConfig
from backup_contracts.redaction import inline_credential, is_credential_name

__all__ = [
    "BY_REFERENCE",
    "CommandConfig",
    "DatabaseConfig",
    "EngineConfig",
    "FilesConfig",
    "MariaDBConfig",
    "PostgresConfig",
    "PostgresPhysicalConfig",
    "Resolve",
    "SQLiteConfig",
    "SecretRef",
    "secret_refs",
]

_PASSWORD_OPTIONS = frozenset({"--password", "--passwd", "--pass", "--token", "--secret", "--api-key"})


class PostgresConfig(DatabaseConfig):
    engine: Literal["postgresql"]
    port: Annotated[int, PORT] = 5432
    user: str = "postgres"
    maintenance_database: str = Field(
        default="postgres", description="database used to create a clone destination and to check the server"
    )
    pg_dump: str = "pg_dump"
    pg_restore: str = "pg_restore"
    psql: str = "psql"
    sslmode: str | None = None
    restore_jobs: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="parallel pg_restore jobs for a clone or drill (default: the host's cores); in-place is one",
    )

    _check_maintenance_db = field_validator("maintenance_database")(db_name)


class MariaDBConfig(DatabaseConfig):
    engine: Literal["mariadb"]
    port: Annotated[int, PORT] = 3306
    user: str = "root"
    dump_binary: str | None = Field(default=None, description="default: mariadb-dump, else mysqldump")
    client_binary: str | None = Field(default=None, description="default: mariadb, else mysql")


class SQLiteConfig(EngineModel):
    engine: Literal["sqlite"]
    path: Path
    temp_dir: Path | None = Field(
        default=None, description="where the online copy is staged before streaming (default: system temp dir)"
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"sqlite path {str(value)!r} must be absolute. Fix: write the full path")
        return value


class FilesConfig(EngineModel):
    engine: Literal["files"]
    paths: list[Path] = Field(min_length=1)
    excludes: list[str] = Field(default_factory=list, description="GNU tar --exclude patterns, e.g. '*.tmp'")
    restore_dir: Path | None = Field(
        default=None,
        description="clone/drill restores extract here (absolute paths are recreated below it);"
        " in-place restores swap each configured path",
    )
    tar: str = "tar"

    @field_validator("paths")
    @classmethod
    def _absolute_paths(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.is_absolute() or path == Path("/"):
                raise ValueError(f"path {str(path)!r} must be absolute and not '/'. Fix: write the full path")
            if ".." in path.parts:
                raise ValueError(f"path {str(path)!r} must not contain '..'")
        resolved = [p.as_posix() for p in value]
        for a in resolved:
            for b in resolved:
                if a != b and (b + "/").startswith(a + "/"):
                    raise ValueError(f"paths {a!r} and {b!r} overlap. Fix: keep only {a!r}")
        return value

    @field_validator("restore_dir")
    @classmethod
    def _absolute_restore_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("restore_dir must be absolute")
        return value


class CommandConfig(EngineModel):
    """Any dump command writing to stdout plus its restore command reading stdin.

    This is how MongoDB is supported (``dump_command: [mongodump, --archive, "--config={file:mongo}"]``
    with ``secret_files: {mongo: {content: "password: {secret_json}", secret: {...}}}``: mongodump
    reads its password from a YAML ``--config`` file), and likewise Redis, etcd or any tool that can
    stream a snapshot. ``verify_command`` reads the raw dump on its stdin while it streams; the backup
    counts only when it exits 0 after the end of the stream.
    """

    class SecretFile(Model):
        """A file written for one child only: ``content`` with ``{secret}`` replaced by the resolved
        ``secret`` as is, or ``{secret_json}`` by it as a JSON string (which YAML reads as well, so any
        character of a password is safe in a YAML or JSON config file)."""

        content: str = Field(description="e.g. 'password: {secret_json}' (mongodump/mongorestore --config)")
        secret: SecretRef

        @staticmethod
        def placeholder() -> re.Pattern[str]:
            return re.compile(r"\{secret(_json)?\}")

        @field_validator("content")
        @classmethod
        def _placeholder_and_no_inline_secret(cls, value: str) -> str:
            if not cls.placeholder().search(value):
                raise ValueError(
                    "secret file content has no {secret} or {secret_json} placeholder."
                    " Fix: e.g. content: 'password: {secret_json}'"
                )
            for line in value.splitlines():
                found = None if cls.placeholder().search(line) else inline_credential(line)
                if found:
                    raise ValueError(f"secret file content holds {found} in the clear. Fix: write {{secret}} there")
            return value

    engine: Literal["command"]
    dump_command: list[str] = Field(min_length=1)
    restore_command: list[str] = Field(min_length=1)
    verify_command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="reads the raw dump on stdin while it streams; the backup counts only if it exits 0 after EOF",
    )
    verify_stall_timeout_s: float = Field(
        default=300,
        gt=0,
        le=86_400,
        description="verify_command reading nothing (or not exiting after EOF) so long fails",
    )
    format: str = "command"
    extension: str = "bin"
    env: dict[str, SecretRef | str] = Field(default_factory=dict)
    secret_files: dict[str, SecretFile] = Field(
        default_factory=dict,
        description="NAME -> a 0600 file in a private 0700 dir, for one child; '{file:NAME}' in a command's argv"
        " becomes its path; removed when the child is reaped",
    )
    magic_hex: str | None = Field(default=None, description="the dump must start with these bytes (hex)")

    @staticmethod
    def file_reference() -> re.Pattern[str]:
        """``{file:NAME}`` inside an argv element: replaced by the path of secret file NAME."""
        return re.compile(r"\{file:([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\}")

    @staticmethod
    def argv_fix() -> str:
        return (
            f"{ARGV_FIX}; or have the agent write it into a private file for the command (secret_files, then"
            " '--config={file:NAME}' in argv: how mongodump/mongorestore take a password)"
        )

    def argv_commands(self) -> dict[str, list[str]]:
        commands = {"dump_command": self.dump_command, "restore_command": self.restore_command}
        if self.verify_command is not None:
            commands["verify_command"] = self.verify_command
        return commands

    @field_validator("env")
    @classmethod
    def _secret_variables_by_reference(cls, value: dict[str, SecretRef | str]) -> dict[str, SecretRef | str]:
        for name, item in value.items():
            if isinstance(item, str) and is_credential_name(name):
                raise ValueError(
                    f"env {name} is a secret given inline; the config file must not hold it."
                    f" {BY_REFERENCE.replace('e.g. {env: DB_PASSWORD}', f'e.g. {name}: {{env: {name}}}')}"
                )
        return value

    @field_validator("verify_command", mode="before")
    @classmethod
    def _verify_argv_without_inline_secret(cls, value: Any) -> Any:
        for where, text in strings(value, "verify_command"):
            found = inline_credential(text)
            if found:
                raise ValueError(f"{where} holds {found} in the clear; the config file must not. {cls.argv_fix()}")
        return value

    @field_validator("dump_command", "restore_command", "verify_command")
    @classmethod
    def _no_password_option(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        for option, following in itertools.pairwise(value or []):
            if option.lower() in _PASSWORD_OPTIONS and not following.startswith("-"):
                raise ValueError(f"{info.field_name} passes a secret as {option} VALUE. {cls.argv_fix()}")
        return value

    @model_validator(mode="after")
    def _file_references_name_secret_files(self) -> CommandConfig:
        known = ", ".join(sorted(self.secret_files)) or "none yet"
        for name in self.secret_files:
            if not self.file_reference().fullmatch(f"{{file:{name}}}"):
                raise ValueError(f"secret file name {name!r} must be 1-64 letters, digits, '_', '.', '-'")
        used: set[str] = set()
        for field, argv in self.argv_commands().items():
            for arg in argv:
                names = self.file_reference().findall(arg)
                if arg.count("{file:") != len(names) or not set(names) <= set(self.secret_files):
                    raise ValueError(
                        f"{field} refers to a secret file that is not defined: {arg!r}. Fix: write {{file:NAME}},"
                        f" NAME one of secret_files ({known})"
                    )
                used.update(names)
        if unused := sorted(set(self.secret_files) - used):
            raise ValueError(
                f"secret file {unused[0]!r} is used by no command. Fix: pass e.g. '--config={{file:{unused[0]}}}' in"
                " dump_command, restore_command or verify_command, or remove it"
            )
        return self

    @field_validator("magic_hex")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if not bytes.fromhex(value):
                    raise ValueError("empty")
            except ValueError as exc:
                raise ValueError(f"magic_hex {value!r} is not non-empty hex, e.g. '8199e26d'") from exc
        return value


EngineConfig = Annotated[
    PostgresConfig | PostgresPhysicalConfig | MariaDBConfig | SQLiteConfig | FilesConfig | CommandConfig,
    Field(discriminator="engine"),
]


def secret_refs(value: Any) -> list[SecretRef]:
    """Every secret reference inside a target's config (so that `check` can prove each resolves)."""
    if isinstance(value, SecretRef):
        return [value]
    if isinstance(value, BaseModel):
        return [ref for name in type(value).model_fields for ref in secret_refs(getattr(value, name))]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in secret_refs(item)]
    if isinstance(value, list | tuple):
        return [ref for item in value for ref in secret_refs(item)]
    return []
