"""Every engine is an ``Engine``: it has each member of the protocol, with the protocol's parameters."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from backup_agent.engines import (
    CommandConfig,
    EngineConfig,
    FilesConfig,
    MariaDBConfig,
    PostgresConfig,
    PostgresPhysicalConfig,
    SQLiteConfig,
    build_engine,
)
from backup_agent.engines.base import Engine

pytestmark = pytest.mark.unit

CONFIGS: dict[str, EngineConfig] = {
    "sqlite": SQLiteConfig(engine="sqlite", path=Path("/srv/app.db")),
    "postgresql": PostgresConfig(engine="postgresql", database="app"),
    "postgresql-physical": PostgresPhysicalConfig(engine="postgresql-physical", data_directory=Path("/srv/pg-clone")),
    "mariadb": MariaDBConfig(engine="mariadb", database="app"),
    "files": FilesConfig(engine="files", paths=[Path("/srv/uploads")], restore_dir=Path("/srv/restored")),
    "command": CommandConfig(engine="command", dump_command=["cat", "/srv/dump"], restore_command=["cat"]),
}

METHODS = sorted(name for name, value in vars(Engine).items() if inspect.isfunction(value) and name[0] != "_")
ATTRIBUTES = sorted(inspect.get_annotations(Engine))


def test_the_protocol_has_the_members_the_pipeline_restores_and_drills_rely_on() -> None:
    assert METHODS == ["check", "drop_restored", "restore", "start_dump", "validator", "versions"]
    assert ATTRIBUTES == ["extension", "format", "name"]


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_each_engine_has_every_member_of_the_engine_protocol(kind: str) -> None:
    engine = build_engine(f"{kind}-target", CONFIGS[kind], lambda _ref: "unused")

    assert engine.name == kind
    for attribute in ATTRIBUTES:
        assert isinstance(getattr(engine, attribute), str), attribute
    for method in METHODS:
        implemented = list(inspect.signature(getattr(type(engine), method)).parameters.values())
        declared = list(inspect.signature(getattr(Engine, method)).parameters.values())
        assert [(p.name, p.kind) for p in implemented[: len(declared)]] == [(p.name, p.kind) for p in declared], method
        # a database engine's restore takes more (the source's properties, a verified archive): optional only
        extra = implemented[len(declared) :]
        assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extra), (method, extra)
