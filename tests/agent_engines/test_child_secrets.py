"""Each child process gets only its own target's secrets: version probes none, dumps their own, and no
child another target's password variable — against the real PostgreSQL and MariaDB servers and tar."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_agent import proc
from backup_agent.cli import make_engine_factory
from backup_agent.config import parse_config
from backup_agent.engines import build_engine
from backup_agent.engines.config import FilesConfig, MariaDBConfig, PostgresConfig, SecretRef
from backup_agent.secrets import SecretResolver
from backup_contracts.redaction import forget_secrets

from .conftest import run_dump

pytestmark = pytest.mark.integration

OWN_PASSWORD = "own-Target-pw-7f3a"
OTHER_PASSWORD = "other-Target-pw-91c2"
AWS_SECRET = "agent-aws-secret-key-0b5e"


@pytest.fixture(autouse=True)
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This target's password variable, another target's, and the agent's own AWS secret."""
    monkeypatch.setenv("BK_OWN_DB_PASS", OWN_PASSWORD)
    monkeypatch.setenv("ORDERS_DB_PASS", OTHER_PASSWORD)  # no credential word: only the config says so
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    # what the engine factory does with every {env: VAR} reference of the host's config
    proc.hide_variables(["ORDERS_DB_PASS", "BK_OWN_DB_PASS"])
    yield
    proc.forget_hidden_variables()
    forget_secrets()


def recording_wrapper(tmp_path: Path, tool: str) -> Path:
    """``tool``, wrapped: each run writes its environment to ``<tmp>/env/<first arg>.<pid>``, then execs it."""
    (tmp_path / "env").mkdir(exist_ok=True)
    script = tmp_path / f"recording-{Path(tool).name}"
    script.write_text(f'#!/bin/sh\nenv > "{tmp_path}/env/$1.$$"\nexec {tool} "$@"\n')
    script.chmod(0o755)
    return script


def recorded(tmp_path: Path, first_arg: str) -> list[str]:
    return [path.read_text() for path in sorted((tmp_path / "env").glob(f"{first_arg}.*"))]


def assert_no_secret(env_text: str, *, own: bool = False) -> None:
    assert "ORDERS_DB_PASS" not in env_text
    assert OTHER_PASSWORD not in env_text
    assert "AWS_SECRET_ACCESS_KEY" not in env_text
    assert AWS_SECRET not in env_text
    if not own:
        assert "BK_OWN_DB_PASS" not in env_text
        assert OWN_PASSWORD not in env_text


@pytest.mark.postgres
def test_pg_dump_version_probe_gets_no_secret_and_the_dump_only_its_passfile(
    tmp_path: Path, postgres_server: None
) -> None:
    config = PostgresConfig(
        engine="postgresql",
        database="postgres",
        pg_dump=str(recording_wrapper(tmp_path, "pg_dump")),
        password=SecretRef(env="BK_OWN_DB_PASS"),
    )
    engine = build_engine("pg", config, SecretResolver())

    assert engine.versions().tool_version is not None
    result = run_dump(engine)

    (probe,) = recorded(tmp_path, "--version")
    assert_no_secret(probe)
    assert "PGPASSFILE" not in probe
    (dump,) = recorded(tmp_path, "--format=custom")
    assert result.outcome.exit_code == 0
    assert "PGPASSFILE=" in dump
    assert_no_secret(dump)  # the password itself reaches pg_dump only inside the passfile


@pytest.mark.mariadb
def test_mariadb_dump_version_probe_and_dump_get_no_other_secret(tmp_path: Path, mariadb_server: None) -> None:
    config = MariaDBConfig(
        engine="mariadb", database="mysql", dump_binary=str(recording_wrapper(tmp_path, "mariadb-dump"))
    )
    engine = build_engine("maria", config, SecretResolver())

    assert engine.versions().tool_version is not None
    result = run_dump(engine)

    (probe,) = recorded(tmp_path, "--version")
    assert_no_secret(probe)
    assert result.outcome.exit_code == 0
    (dump,) = recorded(tmp_path, "--host=127.0.0.1")
    assert_no_secret(dump)


def test_tar_version_probe_and_dump_get_no_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    engine = build_engine(
        "files",
        FilesConfig(engine="files", paths=[data], tar=str(recording_wrapper(tmp_path, "tar"))),
        SecretResolver(),
    )

    assert engine.versions().tool_version is not None
    assert run_dump(engine).outcome.exit_code == 0

    for text in [*recorded(tmp_path, "--version"), *recorded(tmp_path, "--create")]:
        assert_no_secret(text)


def test_a_command_target_gets_its_own_secret_and_not_another_targets_password_variable(tmp_path: Path) -> None:
    proc.forget_hidden_variables()  # only the config below decides what is hidden
    config = parse_config(
        f"""
agent: demo-host
region: us-east-1
queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/jobs
bus_name: bus
kms_key_id: arn:aws:kms:us-east-1:123456789012:key/abc
targets:
  orders: {{ engine: postgresql, database: orders, password: {{ env: ORDERS_DB_PASS }} }}
  app:
    engine: command
    dump_command: [{sys.executable}, -c, "import os; print(sorted(os.environ.items()))"]
    restore_command: [cat]
    env: {{ APP_SECRET: {{ env: BK_OWN_DB_PASS }}, APP_MODE: fast }}
"""
    )
    engine = make_engine_factory(config, SecretResolver())("app")

    result = run_dump(engine)

    child_env = dict(eval(result.data.decode()))  # noqa: S307 - our own child's printed dict items
    assert child_env["APP_SECRET"] == OWN_PASSWORD
    assert child_env["APP_MODE"] == "fast"
    assert "BK_OWN_DB_PASS" not in child_env  # its value arrives under the name the target gave it
    assert_no_secret("\n".join(f"{k}={v}" for k, v in child_env.items() if k != "APP_SECRET"))
    assert os.environ["ORDERS_DB_PASS"] == OTHER_PASSWORD  # the agent itself still has it


@pytest.mark.mariadb
def test_a_password_quoted_from_the_option_file_is_masked_in_the_failed_dumps_tail(
    tmp_path: Path, mariadb_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = 'Pa:ss\\wo"rd-é-9'
    monkeypatch.setenv("BK_OWN_DB_PASS", password)
    leaking = tmp_path / "leaking-dump"
    leaking.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && exec mariadb-dump --version\n'
        'echo "cannot log in with $(cat "${1#--defaults-extra-file=}")" >&2\nexit 2\n'
    )
    leaking.chmod(0o755)
    config = MariaDBConfig(
        engine="mariadb", database="mysql", dump_binary=str(leaking), password=SecretRef(env="BK_OWN_DB_PASS")
    )

    outcome = run_dump(build_engine("maria", config, SecretResolver())).outcome

    assert outcome.exit_code == 2
    assert "cannot log in with [client]" in outcome.stderr_tail
    assert "password=***" in outcome.stderr_tail
    assert "rd-é-9" not in outcome.stderr_tail
