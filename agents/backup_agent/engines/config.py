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

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_PORT = Field(ge=1, le=65535)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Model):
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


def _db_name(value: str) -> str:
    if not _IDENT_OK.match(value) or value.startswith("-"):
        raise ValueError("database name must be 1-63 characters, without NUL, not starting with '-'")
    return value


class DatabaseConfig(_Model):
    """One database on a server: where it is, who connects, and the password by reference.

    The arm of each server engine; each sets its own ``engine`` tag and default port and user.
    """

    engine: str
    host: str = "127.0.0.1"
    port: Annotated[int, _PORT]
    user: str
    database: str
    password: SecretRef | None = None

    _check_db = field_validator("database")(_db_name)


class PostgresConfig(DatabaseConfig):
    engine: Literal["postgresql"]
    port: Annotated[int, _PORT] = 5432
    user: str = "postgres"
    maintenance_database: str = Field(
        default="postgres", description="database used to create a clone destination and to check the server"
    )
    pg_dump: str = "pg_dump"
    pg_restore: str = "pg_restore"
    psql: str = "psql"
    sslmode: str | None = None

    _check_maintenance_db = field_validator("maintenance_database")(_db_name)


class MariaDBConfig(DatabaseConfig):
    engine: Literal["mariadb"]
    port: Annotated[int, _PORT] = 3306
    user: str = "root"
    dump_binary: str | None = Field(default=None, description="default: mariadb-dump, else mysqldump")
    client_binary: str | None = Field(default=None, description="default: mariadb, else mysql")


class SQLiteConfig(_Model):
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


class FilesConfig(_Model):
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


class CommandConfig(_Model):
    """Any dump command writing to stdout plus its restore command reading stdin.

    This is how MongoDB is supported (``dump_command: [mongodump, --archive, --uri=...]`` with the
    URI's password passed through ``env`` instead, ``restore_command: [mongorestore, --archive,
    --drop]``), and likewise Redis, etcd or any tool that can stream a snapshot.
    """

    engine: Literal["command"]
    dump_command: list[str] = Field(min_length=1)
    restore_command: list[str] = Field(min_length=1)
    format: str = "command"
    extension: str = "bin"
    env: dict[str, SecretRef | str] = Field(default_factory=dict)
    magic_hex: str | None = Field(default=None, description="the dump must start with these bytes (hex)")

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
    PostgresConfig | MariaDBConfig | SQLiteConfig | FilesConfig | CommandConfig,
    Field(discriminator="engine"),
]
