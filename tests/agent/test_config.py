"""The agent config: validated, and every error names the line and the fix."""

from __future__ import annotations

import pytest

from backup_agent.config import ConfigError, parse_config

pytestmark = pytest.mark.unit

GOOD = """\
agent: demo-host
region: us-east-1
queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/backup-pipeline-demo-host-jobs
bus_name: backup-pipeline-bus
kms_key_id: arn:aws:kms:us-east-1:123456789012:key/abc
compression: { level: 1, threads: 0 }
concurrency: 1
state_dir: /var/lib/backup-agent
targets:
  app-sqlite: { engine: sqlite, path: /srv/app/app.db }
  orders-pg:
    engine: postgresql
    host: 127.0.0.1
    database: orders
    password: { env: ORDERS_PG_PASSWORD }
"""


def test_the_documented_example_config_is_valid():
    config = parse_config(GOOD)
    assert config.agent == "demo-host"
    assert config.compression.zstd_threads == -1
    assert type(config.targets["orders-pg"]).__name__ == "PostgresConfig"
    assert config.targets["orders-pg"].password.env == "ORDERS_PG_PASSWORD"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yaml")
    return info.value.problems


def test_wrong_type_in_a_target_names_its_line_and_the_fix():
    problems = _problems(GOOD.replace("    host: 127.0.0.1", "    host: 127.0.0.1\n    port: fifty"))
    assert len(problems) == 1
    assert problems[0].startswith("line 14: targets > orders-pg > postgresql > port")
    assert "Fix:" in problems[0]


def test_unknown_engine_names_the_line_and_lists_the_engines():
    problems = _problems(GOOD.replace("engine: sqlite", "engine: oracle"))
    assert problems[0].startswith("line 10:")
    assert "postgresql" in problems[0]
    assert "sqlite" in problems[0]


def test_missing_required_setting_is_named_with_the_fix():
    problems = _problems(GOOD.replace("bus_name: backup-pipeline-bus\n", ""))
    assert any("bus_name" in p and "add `bus_name:`" in p for p in problems)


def test_misspelt_setting_names_its_line():
    problems = _problems(GOOD.replace("concurrency: 1", "concurency: 1"))
    assert problems == [
        "line 7: concurency: Extra inputs are not permitted. Fix: remove `concurency` "
        "(unknown setting) or fix its spelling"
    ]


def test_inline_password_is_refused():
    problems = _problems(GOOD.replace("password: { env: ORDERS_PG_PASSWORD }", "password: hunter2"))
    assert problems[0].startswith("line 15:")


def test_yaml_syntax_error_names_the_line():
    problems = _problems(GOOD.replace("concurrency: 1", "concurrency: [1"))
    assert problems[0].startswith("line ")
    assert "YAML syntax" in problems[0]


def test_bad_compression_level_names_the_line():
    problems = _problems(GOOD.replace("level: 1,", "level: 99,"))
    assert problems[0].startswith("line 6: compression > level")


def test_compression_defaults_to_the_dump_tuned_parameters_and_a_level_selects_standard_zstd():
    default = parse_config(GOOD.replace("compression: { level: 1, threads: 0 }\n", ""), "agent.yaml").compression
    assert default.level is None
    assert default.describe() == "zstd --zstd=strat=2,wlog=20,hlog=17,clog=16,slog=1,mml=6,tlen=0"
    assert parse_config(GOOD, "agent.yaml").compression.describe() == "zstd-1"


def test_a_kms_key_alias_is_refused_with_the_arn_the_bucket_policy_needs() -> None:
    text = GOOD.replace("kms_key_id: arn:aws:kms:us-east-1:123456789012:key/abc", "kms_key_id: alias/backups")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "agent.yaml")
    problem = str(caught.value)
    assert "kms_key_id" in problem
    assert "line " in problem
    assert "full ARN" in problem
