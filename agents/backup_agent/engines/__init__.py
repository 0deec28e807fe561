"""Database and file engines: each knows how to dump, check, and restore one kind of target.

``build_engine(target_name, config, resolve)`` turns one validated ``EngineConfig`` (see
``backup_agent.engines.config``) into an ``Engine`` (see ``backup_agent.engines.base``). ``resolve``
maps a ``SecretRef`` to its value and is called lazily, each time a dump, restore or check needs a
password, so rotated secrets are picked up and nothing is resolved at import or build time.
"""

from __future__ import annotations

from backup_agent.engines.base import Engine, EngineError, InvalidDumpError, RestoreReport, Versions
from backup_agent.engines.config import (
    CommandConfig,
    EngineConfig,
    FilesConfig,
    MariaDBConfig,
    PostgresConfig,
    PostgresPhysicalConfig,
    Resolve,
    SecretRef,
    SQLiteConfig,
)

__all__ = [
    "CommandConfig",
    "Engine",
    "EngineConfig",
    "EngineError",
    "FilesConfig",
    "InvalidDumpError",
    "MariaDBConfig",
    "PostgresConfig",
    "PostgresPhysicalConfig",
    "Resolve",
    "RestoreReport",
    "SQLiteConfig",
    "SecretRef",
    "Versions",
    "build_engine",
]


def build_engine(target_name: str, config: EngineConfig, resolve: Resolve, *, grace: float = 5.0) -> Engine:
    """The engine for one target; ``grace`` is the SIGTERM-to-SIGKILL delay when a dump is terminated."""
    if isinstance(config, PostgresConfig):
        from backup_agent.engines.postgresql import PostgresEngine

        return PostgresEngine(target_name, config, resolve, grace=grace)
    if isinstance(config, PostgresPhysicalConfig):
        from backup_agent.engines.postgresql_physical import PostgresPhysicalEngine

        return PostgresPhysicalEngine(target_name, config, resolve, grace=grace)
    if isinstance(config, MariaDBConfig):
        from backup_agent.engines.mariadb import MariaDBEngine

        return MariaDBEngine(target_name, config, resolve, grace=grace)
    if isinstance(config, SQLiteConfig):
        from backup_agent.engines.sqlite import SQLiteEngine

        return SQLiteEngine(target_name, config, resolve)
    if isinstance(config, FilesConfig):
        from backup_agent.engines.files import FilesEngine

        return FilesEngine(target_name, config, resolve, grace=grace)
    if isinstance(config, CommandConfig):
        from backup_agent.engines.command import CommandEngine

        return CommandEngine(target_name, config, resolve, grace=grace)
    raise TypeError(f"unknown engine config {type(config).__name__}")
