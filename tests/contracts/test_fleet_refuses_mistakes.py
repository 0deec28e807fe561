"""A fleet file with a mistake is refused as ``file:line: entry: problem. Fix: ...``, never with a traceback."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from backup_contracts.fleet import FleetConfigError, load_fleet
from backup_contracts.yamlfile import YamlProblem, read_yaml

pytestmark = pytest.mark.unit

FLEET = """\
version: 1
retention_classes:
  standard: {{ daily_days: 7 }}
agents:
  - name: db-1
    targets:
      - name: orders
        engine: postgresql
        schedule: {schedule}
        rpo: {rpo}
{pipeline}"""


def _problems(tmp_path: Path, *, schedule: str = "cron(0 2 * * *)", rpo: str = "26h", pipeline: str = "") -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(schedule=schedule, rpo=rpo, pipeline=pipeline))
    with pytest.raises(FleetConfigError) as caught:
        load_fleet(path)
    return str(caught.value)


def _one_line(message: str, path: Path) -> str:
    """The single problem line, checked to have the shape ``file:line: entry: problem. Fix: ...``."""
    (line,) = [text.removeprefix("  - ") for text in message.splitlines()[1:]]
    assert re.match(rf"^{re.escape(str(path))}:\d+: .+: .+ Fix: .+", line), line
    return line


def test_a_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(schedule="cron(0 2 * * *)", rpo="26h", pipeline=""))
    assert load_fleet(path).target("orders")[1].rpo == "26h"


def test_a_second_agents_key_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(schedule="cron(0 2 * * *)", rpo="26h", pipeline="agents:\n  - name: db-2\n"))
    with pytest.raises(FleetConfigError) as caught:
        load_fleet(path)
    line = _one_line(str(caught.value), path)
    assert line.startswith(f"{path}:11: agents: key 'agents' is given twice, on line 4 and on line 11")


def test_every_duplicate_key_is_reported_and_a_merge_may_override() -> None:
    text = "a: 1\nb: {x: 1, x: 2}\na: 3\nbase: &b {k: 1}\nuse: {<<: *b, k: 2}\n"
    with pytest.raises(YamlProblem) as caught:
        read_yaml(text)
    assert [line for line, _ in caught.value.problems] == [2, 3]
    assert read_yaml("base: &b {k: 1}\nuse: {<<: *b, k: 2}\n").data["use"] == {"k": 2}


@pytest.mark.parametrize(
    ("schedule", "rpo", "field", "expected"),
    [
        ("cron(0 2 * * *)", "0h", "rpo", "'0h' is not a duration: it is zero"),
        ("cron(0 2 * * *)", "99999999999999999999d", "rpo", "longer than 400d"),
        ("rate(99999999999999 days)", "26h", "schedule", "runs less often than once every 366d"),
        ("rate(400 days)", "26h", "schedule", "runs less often than once every 366d"),
        ("cron(0 0 30 2 *)", "26h", "schedule", "never fires"),
        ("cron(0 0 31 4,6 *)", "26h", "schedule", "never fires"),
        ("cron(0 0 29 2 *)", "400d", "schedule", "leaves up to 1461d between two runs"),
    ],
)
def test_schedule_and_duration_errors_name_file_line_entry_and_fix(
    tmp_path: Path, schedule: str, rpo: str, field: str, expected: str
) -> None:
    message = _problems(tmp_path, schedule=schedule, rpo=rpo)
    line = _one_line(message, tmp_path / "fleet.yaml")
    number = {"schedule": 9, "rpo": 10}[field]
    assert line.startswith(f"{tmp_path / 'fleet.yaml'}:{number}: agents[0] 'db-1' > targets[0] 'orders' > {field}: ")
    assert expected in line


def test_schema_errors_name_the_line(tmp_path: Path) -> None:
    message = _problems(tmp_path, pipeline="pipeline:\n  dispatcher_intervall_minutes: 5\n")
    line = _one_line(message, tmp_path / "fleet.yaml")
    assert line.startswith(f"{tmp_path / 'fleet.yaml'}:12: pipeline > dispatcher_intervall_minutes: unknown key")


@pytest.mark.parametrize(
    ("setting", "value", "bound"),
    [
        ("job_deadline_minutes", 10**14, 10080),
        ("approval_timeout_minutes", 10**9, 10080),
        ("reminder_interval_minutes", 10**9, 10080),
        ("heartbeat_timeout_minutes", 10**9, 10080),
        ("ledger_ttl_days", 10**9, 36500),
    ],
)
def test_huge_pipeline_timeouts_are_refused_with_their_bound(
    tmp_path: Path, setting: str, value: int, bound: int
) -> None:
    message = _problems(tmp_path, pipeline=f"pipeline:\n  {setting}: {value}\n")
    line = _one_line(message, tmp_path / "fleet.yaml")
    assert f":12: pipeline > {setting}: {value} is out of range. Fix: use at most {bound}" in line


def test_the_longest_allowed_timeouts_load(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    pipeline = "pipeline:\n  job_deadline_minutes: 10080\n  approval_timeout_minutes: 10080\n  ledger_ttl_days: 36500\n"
    path.write_text(FLEET.format(schedule="rate(366 days)", rpo="400d", pipeline=pipeline))
    assert load_fleet(path).pipeline.job_deadline_minutes == 10080


def test_a_wal_rpo_on_a_target_that_archives_no_wal_is_refused_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(schedule="cron(0 2 * * *)", rpo="26h\n        wal_rpo: 5m", pipeline=""))
    with pytest.raises(FleetConfigError) as caught:
        load_fleet(path)
    line = _one_line(str(caught.value), path)
    assert "wal_rpo: engine postgresql archives no WAL" in line
    assert "Fix: use engine: postgresql-physical" in line


def test_a_physical_postgresql_target_archives_wal_with_a_default_wal_rpo_of_five_minutes(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        FLEET.replace("engine: postgresql", "engine: postgresql-physical").format(
            schedule="cron(0 2 * * *)", rpo="26h", pipeline=""
        )
    )
    target = load_fleet(path).target("orders")[1]
    assert target.pitr
    assert target.wal_rpo_delta == timedelta(minutes=5)
    path.write_text(path.read_text().replace("rpo: 26h", "rpo: 26h\n        wal_rpo: 2m"))
    assert load_fleet(path).target("orders")[1].wal_rpo_delta == timedelta(minutes=2)
