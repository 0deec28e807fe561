"""The ``postgresql-physical`` config arm and the server settings ``check`` judges, without a server:
each refusal names its fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from backup_agent.engines import EngineConfig, EngineError, PostgresPhysicalConfig, build_engine, pg_extract
from backup_agent.engines.base import InvalidDumpError, Recovery
from backup_agent.engines.pg_recovery import recovery_settings, target_text
from backup_agent.engines.postgresql_physical import PostgresPhysicalEngine, settings_problems
from backup_agent.engines.validators.pg_basebackup import safe_member_path

pytestmark = pytest.mark.unit

READY = {
    "wal_level": "replica",
    "archive_mode": "on",
    "archive_command": "backup-agent --config /etc/backup-agent/agent.yaml wal-push --target orders-pitr %p",
    "archive_timeout": "60",
    "max_wal_senders": "3",
    "may_replicate": "true",
    "tablespaces": "0",
}


def parse(**fields: object) -> EngineConfig:
    return TypeAdapter(EngineConfig).validate_python({"engine": "postgresql-physical", **fields})


def test_a_destination_config_validates_into_the_physical_arm() -> None:
    config = parse(data_directory="/srv/pg-clones/orders", port=5439, server_user="postgres")

    assert isinstance(config, PostgresPhysicalConfig)
    assert (config.data_directory, config.port, config.server_user) == (Path("/srv/pg-clones/orders"), 5439, "postgres")
    assert (config.user, config.database, config.listen_addresses) == ("postgres", "postgres", "127.0.0.1")
    assert isinstance(build_engine("orders-pitr-clone", config, lambda _ref: "unused"), PostgresPhysicalEngine)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"password": "hunter2"}, "an inline password is refused"),
        ({"data_directory": "clones/orders"}, "must be an absolute path"),
        ({"data_directory": "/"}, "must be an absolute path other than '/'"),
        ({"bin_dir": "/usr/lib/../bin"}, "without '..'"),
        ({"server_user": "root"}, "Fix: e.g. server_user: postgres"),
        ({"listen_addresses": "127.0.0.1'; archive_mode = on"}, "is not a list of host names or addresses"),
    ],
)
def test_a_mistaken_setting_is_refused_naming_the_fix(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        parse(**fields)


def test_a_server_ready_for_point_in_time_recovery_has_no_problem() -> None:
    assert settings_problems(READY, "backup") == []


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("wal_level", "minimal", "Fix: wal_level = replica"),
        ("archive_mode", "off", "Fix: archive_mode = on"),
        ("archive_command", "cp %p /archive/%f", "not the agent's wal-push"),
        ("archive_timeout", "0", "Fix: archive_timeout = 60"),
        ("max_wal_senders", "0", "Fix: max_wal_senders = 3"),
        ("may_replicate", "false", "Fix: ALTER ROLE backup REPLICATION"),
        ("tablespaces", "1", "ALTER TABLE ... SET TABLESPACE pg_default"),
        ("archive_library", "basic_archive", "Fix: archive_library = ''"),
    ],
)
def test_each_missing_setting_is_one_problem_naming_its_fix(setting: str, value: str, says: str) -> None:
    problems = settings_problems({**READY, setting: value}, "backup")

    assert len(problems) == 1
    assert says in problems[0]


def test_an_archive_command_the_role_may_not_read_says_how_to_let_it() -> None:
    settings = {name: value for name, value in READY.items() if name != "archive_command"}

    assert settings_problems(settings, "backup") == [
        "cannot read archive_command as 'backup'. Fix: GRANT pg_read_all_settings TO backup, or check as a superuser"
    ]


def test_the_target_time_is_written_in_utc_and_a_naive_one_is_refused() -> None:
    berlin = datetime(2026, 12, 3, 10, 41, 7, 250000, tzinfo=timezone(timedelta(hours=1)))

    assert target_text(berlin) == "2026-12-03 09:41:07.250000+00"
    assert target_text(berlin.astimezone(UTC)) == "2026-12-03 09:41:07.250000+00"
    with pytest.raises(EngineError, match="no time zone"):
        target_text(datetime(2026, 12, 3, 9, 41, 7))  # noqa: DTZ001 - the mistake under test


def test_a_clone_never_archives_and_a_restore_command_is_quoted() -> None:
    config = PostgresPhysicalConfig(engine="postgresql-physical", data_directory=Path("/srv/c"), port=5439)
    settings = recovery_settings(config, Path("/srv/c"), Recovery(restore_command="fetch '%f' %p"))

    assert settings["archive_mode"] == "off"
    assert settings["restore_command"] == "'fetch ''%f'' %p'"
    assert settings["recovery_target_time"] == "''"
    assert (settings["port"], settings["unix_socket_directories"]) == ("5439", "'/srv/c'")
    with pytest.raises(EngineError, match="one line"):
        recovery_settings(config, Path("/srv/c"), Recovery(restore_command="fetch\narchive_mode = on"))


def test_an_agent_running_as_root_needs_a_server_user_for_the_restored_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)

    with pytest.raises(EngineError, match="Fix: set server_user"):
        pg_extract.server_user(None)
    with pytest.raises(EngineError, match="is not an OS user of this host"):
        pg_extract.server_user("no-such-user-here")


def test_safe_paths_stay_inside_the_data_directory() -> None:
    assert safe_member_path("./pg_wal/archive_status/") == "pg_wal/archive_status"
    assert safe_member_path("base/1/2606") == "base/1/2606"
    for unsafe in ("/etc/passwd", "../x", "base/../../x", "base//x", ""):
        with pytest.raises(InvalidDumpError, match="unsafe path"):
            safe_member_path(unsafe)
