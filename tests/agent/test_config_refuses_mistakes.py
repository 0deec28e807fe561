"""The agent config refuses what it used to accept silently: duplicate keys, sub-minute heartbeats, and a
secret written into the file in any engine's settings — each with its line and a fix that names the
secret references the agent resolves."""

from __future__ import annotations

import pytest

from backup_agent.config import ConfigError, parse_config

pytestmark = pytest.mark.unit

HEAD = """\
agent: demo-host
region: us-east-1
queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/backup-pipeline-demo-host-jobs
bus_name: backup-pipeline-bus
kms_key_id: arn:aws:kms:us-east-1:123456789012:key/abc
targets:
"""
PG = "  orders-pg: { engine: postgresql, database: orders, password: { env: ORDERS_PG_PASSWORD } }\n"
SECRET_REFERENCES = ("{env: ", "{file: ", "{secretsmanager: ", "{ssm: ", "docs/agent.md")


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yaml")
    return info.value.problems


def test_a_duplicate_target_is_refused_naming_both_lines() -> None:
    other = "  orders-pg: { engine: sqlite, path: /srv/app.db }\n"
    (problem,) = _problems(HEAD + PG + other)
    assert problem.startswith("line 8: targets > orders-pg: key 'orders-pg' is given twice, on line 7 and on line 8")


def test_a_duplicate_top_level_setting_is_refused() -> None:
    (problem,) = _problems(HEAD + PG + "region: eu-west-1\n")
    assert problem.startswith("line 8: region: key 'region' is given twice, on line 2 and on line 8")


@pytest.mark.parametrize(("value", "bound"), [("0.0001", "at least 1"), ("0", "at least 1"), ("61", "at most 60")])
def test_heartbeat_minutes_outside_one_to_sixty_is_refused(value: str, bound: str) -> None:
    (problem,) = _problems(HEAD.replace("targets:\n", f"heartbeat_minutes: {value}\ntargets:\n") + PG)
    assert problem.startswith("line 6: heartbeat_minutes:")
    assert f"Fix: use a value of {bound}" in problem


def test_a_one_minute_heartbeat_is_accepted() -> None:
    config = parse_config(HEAD.replace("targets:\n", "heartbeat_minutes: 1\ntargets:\n") + PG)
    assert config.heartbeat_minutes == 1


INLINE_SECRETS = {
    "postgresql password": "  t: { engine: postgresql, database: app, password: hunter2-secret }\n",
    "postgresql URL host": "  t: { engine: postgresql, database: app, host: 'postgresql://bk:hunter2@db' }\n",
    "postgresql conninfo": "  t: { engine: postgresql, database: 'app password=hunter2' }\n",
    "mariadb password": "  t: { engine: mariadb, database: app, password: hunter2-secret }\n",
    "mariadb host": "  t: { engine: mariadb, database: app, host: 'mysql://root:hunter2@db' }\n",
    "sqlite path": "  t: { engine: sqlite, path: '/srv/app.db?password=hunter2' }\n",
    "files exclude": "  t: { engine: files, paths: [/srv/app], excludes: ['token=hunter2'] }\n",
    "command env password": (
        "  t: { engine: command, dump_command: [mongodump], restore_command: [mongorestore],"
        " env: { MONGO_PASSWORD: hunter2 } }\n"
    ),
    "command env URL": (
        "  t: { engine: command, dump_command: [mongodump], restore_command: [mongorestore],"
        " env: { MONGO_URI: 'mongodb://bk:hunter2@127.0.0.1/app' } }\n"
    ),
    "command argv URL": (
        "  t: { engine: command, dump_command: [mongodump, '--uri=mongodb://bk:hunter2@h/app'],"
        " restore_command: [mongorestore] }\n"
    ),
    "command argv option": (
        "  t: { engine: command, dump_command: [mongodump, --password, hunter2], restore_command: [mongorestore] }\n"
    ),
}


@pytest.mark.parametrize("case", sorted(INLINE_SECRETS))
def test_an_inline_secret_is_refused_in_every_engine_with_the_reference_as_the_fix(case: str) -> None:
    (problem,) = _problems(HEAD + INLINE_SECRETS[case])
    assert problem.startswith("line 7: targets > t > ")
    assert "hunter2" not in problem
    assert "Fix:" in problem
    if "argv" in case:
        assert "process list" in problem
        assert "env:" in problem
    else:
        assert all(reference in problem for reference in SECRET_REFERENCES), problem


def test_references_and_where_secrets_live_are_accepted() -> None:
    text = HEAD + (
        "  t: { engine: command, dump_command: [restic, backup, --stdin, --password-file=/etc/restic.pass],"
        " restore_command: [restore-it], env: { RESTIC_PASSWORD_FILE: /etc/restic.pass,"
        " MONGO_PASSWORD: { secretsmanager: prod/mongo, json_key: password }, MONGO_HOST: 127.0.0.1 } }\n"
        "  p: { engine: postgresql, database: app, password: { file: /etc/backup-agent/pg.pass } }\n"
        "  s: { engine: sqlite, path: /srv/secrets.db }\n"
    )
    assert set(parse_config(text).targets) == {"t", "p", "s"}
