"""Redaction, stderr tails, secret files and the engine config models."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from backup_agent import proc
from backup_agent.engines import build_engine
from backup_agent.engines.config import EngineConfig, SecretRef
from backup_agent.engines.files import FilesEngine
from backup_agent.engines.mariadb import MariaDBEngine
from backup_agent.engines.postgresql import PostgresEngine
from backup_agent.engines.sqlite import SQLiteEngine

pytestmark = pytest.mark.unit

ADAPTER: TypeAdapter[EngineConfig] = TypeAdapter(EngineConfig)


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("connect failed: password=hunter2 host=x", "hunter2"),
        ("PGPASSWORD=hunter2 pg_dump", "hunter2"),
        ("MYSQL_PWD='hunter 2' mysql", "hunter 2"),
        ("mysql -uroot -phunter2 db", "hunter2"),
        ("uri postgresql://app:hunter2@db:5432/x", "hunter2"),
        ("mongodb://admin:hunter2@h/?authSource=admin", "hunter2"),
        ("token: abc.def.ghi", "abc.def.ghi"),
        ("the resolved value s3cr3t-v4lue appears raw", "s3cr3t-v4lue"),
    ],
)
def test_redactor_masks_secrets_and_credential_shapes(text: str, leak: str) -> None:
    redacted = proc.Redactor(["s3cr3t-v4lue"])(text)

    assert leak not in redacted
    assert "***" in redacted


def test_redactor_keeps_innocent_text() -> None:
    text = 'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed -P3306'

    assert proc.Redactor()(text) == text


def test_tail_is_redacted_before_it_is_cut_to_four_kib() -> None:
    raw = ("x" * 10_000 + " password=topsecret " + "y" * 100).encode()

    tail = proc.tail_text(raw, proc.Redactor(["topsecret"]))

    assert "topsecret" not in tail
    assert len(tail.encode()) <= proc.TAIL_BYTES
    assert tail.endswith("y" * 100)


def test_secret_files_are_private_and_removed() -> None:
    files = proc.SecretFiles()
    path = Path(files.write("pgpass", "*:*:*:*:pw\n"))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    files.cleanup()
    files.cleanup()
    assert not path.exists()
    assert not path.parent.exists()


def test_child_env_drops_variables_holding_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "pw-value-1")
    monkeypatch.setenv("PGPASSWORD", "other")

    env = proc.child_env({"PGPASSFILE": "/x"}, drop=("PGPASSWORD",), secrets=["pw-value-1"])

    assert "DB_PASSWORD" not in env
    assert "PGPASSWORD" not in env
    assert env["PGPASSFILE"] == "/x"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ({"engine": "postgresql", "database": "app", "password": {"env": "PGPW"}}, PostgresEngine),
        ({"engine": "mariadb", "database": "app", "password": {"file": "/etc/agent/pw"}}, MariaDBEngine),
        ({"engine": "sqlite", "path": "/var/lib/app/app.db"}, SQLiteEngine),
        ({"engine": "files", "paths": ["/srv/uploads"], "excludes": ["*.tmp"]}, FilesEngine),
    ],
)
def test_config_union_dispatches_on_engine_and_builds_the_engine(raw: dict[str, object], kind: type) -> None:
    config = ADAPTER.validate_python(raw)

    assert isinstance(build_engine("t", config, lambda ref: "x"), kind)


def test_postgres_defaults_match_the_local_conventions() -> None:
    config = ADAPTER.validate_python({"engine": "postgresql", "database": "app"})

    assert (config.host, config.port, config.user, config.password) == ("127.0.0.1", 5432, "postgres", None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"engine": "postgresql", "database": "app", "password": {}}, "exactly one"),
        ({"engine": "postgresql", "database": "app", "password": {"env": "A", "ssm": "/b"}}, "exactly one"),
        ({"engine": "postgresql", "database": "app", "password": "plaintext"}, "inline password is refused"),
        ({"engine": "postgresql", "database": "-app"}, "not starting with '-'"),
        ({"engine": "sqlite", "path": "relative.db"}, "must be absolute"),
        ({"engine": "files", "paths": ["/srv", "/srv/uploads"]}, "overlap"),
        ({"engine": "files", "paths": []}, "at least 1"),
        ({"engine": "command", "dump_command": ["x"], "restore_command": ["y"], "magic_hex": "zz"}, "hex"),
        ({"engine": "oracle", "database": "x"}, "oracle"),
        ({"engine": "mariadb", "database": "a", "pasword": {"env": "X"}}, "pasword"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_reason(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ADAPTER.validate_python(raw)


def test_pg_argv_never_contains_the_password() -> None:
    config = ADAPTER.validate_python({"engine": "postgresql", "database": "app", "password": {"env": "X"}})
    engine = build_engine("t", config, lambda ref: "pw-in-argv?")
    assert isinstance(engine, PostgresEngine)

    running = engine.start_dump()  # whatever happens to the connection, inspect what was built
    argv = running.proc.args
    running.terminate()
    running.wait()

    assert all("pw-in-argv?" not in arg for arg in argv)


def test_secret_ref_describe_never_shows_a_value() -> None:
    assert SecretRef(secretsmanager="prod/db", json_key="password").describe() == "secretsmanager:prod/db#password"
