"""The ``postgresql-physical`` arm of the engine config: a PostgreSQL cluster backed up with
``pg_basebackup`` plus its archived WAL, and where a point-in-time restore creates and runs a new one.

As a backup source it says how to reach the server (``host``, ``port``, ``user``, ``password`` by
reference, ``sslmode``; the user needs REPLICATION or superuser) and where ``pg_basebackup`` is. As a
clone or drill destination it says where the new cluster goes: ``data_directory`` (must not exist, or
be empty), ``port`` (the restored server listens there), ``server_user`` (the OS user that owns and
runs it when the agent runs as root) and ``bin_dir`` (its ``pg_ctl``/``postgres``/``psql``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from backup_agent.engines.config_base import PORT, DatabaseConfig

_OS_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$", re.IGNORECASE)


class PostgresPhysicalConfig(DatabaseConfig):
    engine: Literal["postgresql-physical"]
    port: Annotated[int, PORT] = Field(
        default=5432, description="the server's port; for a clone/drill destination, where the restored server listens"
    )
    user: str = Field(
        default="postgres",
        description="a role with REPLICATION (or superuser); a restored cluster is verified as this role of its source",
    )
    database: str = Field(default="postgres", description="the database the agent connects to for checks")
    sslmode: str | None = None
    pg_basebackup: str = "pg_basebackup"
    bin_dir: Path | None = Field(
        default=None,
        description="where pg_ctl, postgres and psql are (default: /usr/lib/postgresql/<major of the backup>/bin,"
        " else `pg_config --bindir`, else PATH)",
    )
    data_directory: Path | None = Field(
        default=None, description="clone/drill destination: the new cluster's data directory (absent or empty)"
    )
    server_user: str | None = Field(
        default=None,
        description="the OS user that owns and runs a restored cluster when the agent runs as root (e.g. postgres);"
        " None: the agent's own user",
    )
    listen_addresses: str = Field(default="127.0.0.1", description="a restored server's listen_addresses")
    recovery_timeout_s: float = Field(
        default=6 * 3600, gt=0, le=7 * 86_400, description="WAL replay taking longer than this fails the restore"
    )
    agent_python: Path | None = Field(
        default=None,
        description="the Python the restored server runs `-m backup_agent.entry wal-fetch` with (its restore_command);"
        " default: the agent's own interpreter. Set it when server_user cannot run that one",
    )

    @field_validator("bin_dir", "data_directory", "agent_python")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and (not value.is_absolute() or value == Path("/") or ".." in value.parts):
            raise ValueError(
                f"{str(value)!r} must be an absolute path other than '/', without '..'. Fix: write the full path"
            )
        return value

    @field_validator("server_user")
    @classmethod
    def _os_user(cls, value: str | None) -> str | None:
        if value is not None and (value == "root" or not _OS_USER.match(value)):
            raise ValueError(
                f"server_user {value!r} is not an OS user name PostgreSQL can run as (not root)."
                " Fix: e.g. server_user: postgres"
            )
        return value

    @field_validator("listen_addresses")
    @classmethod
    def _addresses(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.:*,% -]{1,255}", value):
            raise ValueError(f"listen_addresses {value!r} is not a list of host names or addresses, e.g. 127.0.0.1")
        return value
