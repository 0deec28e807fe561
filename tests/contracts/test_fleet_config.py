"""The fleet file is validated with errors that name the file, the entry and the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from backup_contracts.fleet import FleetConfigError, load_fleet, parse_fleet

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw_fleet() -> dict[str, Any]:
    return yaml.safe_load((REPO / "fleet.yaml").read_text())


def _problem(raw: dict[str, Any]) -> str:
    with pytest.raises(FleetConfigError) as caught:
        parse_fleet(raw, "fleet.yaml")
    return str(caught.value)


def test_shipped_fleet_and_demo_fleet_are_valid() -> None:
    assert len(load_fleet(REPO / "fleet.yaml").targets()) >= 1


def test_unknown_engine_names_the_entry_and_the_choices(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["agents"][0]["targets"][0]["engine"] = "postgress"
    message = _problem(raw_fleet)
    assert message.startswith("fleet.yaml:")
    assert "targets[0] 'app-sqlite' > engine" in message
    assert "unknown engine 'postgress'" in message
    assert "Fix: use one of: postgresql, mariadb, sqlite, files, command" in message


@pytest.mark.parametrize("schedule", ["cron(99 * * * *)", "cron(0 2 * *)", "every day", "rate(0 hours)"])
def test_bad_schedule_is_refused_with_an_example(raw_fleet: dict[str, Any], schedule: str) -> None:
    raw_fleet["agents"][0]["targets"][1]["schedule"] = schedule
    message = _problem(raw_fleet)
    assert "targets[1] 'app-sqlite-clone' > schedule" in message
    assert schedule in message


def test_duplicate_target_names_are_refused_across_agents(raw_fleet: dict[str, Any]) -> None:
    second = copy.deepcopy(raw_fleet["agents"][0])
    second["name"] = "other-host"
    second["targets"] = [second["targets"][0]]
    raw_fleet["agents"].append(second)
    message = _problem(raw_fleet)
    assert "agents[1] 'other-host' > targets[0] 'app-sqlite': duplicate target name" in message
    assert "also on agent 'demo-host'" in message


def test_rpo_shorter_than_the_schedule_interval_is_refused(raw_fleet: dict[str, Any]) -> None:
    target = raw_fleet["agents"][0]["targets"][0]
    target["schedule"], target["rpo"] = "cron(0 2 * * 1-5)", "26h"  # weekdays only: 3-day gap at weekends
    message = _problem(raw_fleet)
    assert "rpo 26h is shorter than the schedule's longest interval (3d)" in message
    assert "Fix: raise rpo to at least 3d" in message


def test_unknown_key_and_missing_key_are_both_reported(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["agents"][0]["targets"][0]["schedul"] = "rate(1 day)"
    del raw_fleet["agents"][0]["targets"][2]["rpo"]
    message = _problem(raw_fleet)
    assert "2 problem(s)" in message
    assert "targets[0] 'app-sqlite' > schedul: unknown key" in message
    assert "targets[2] 'orders-pg' > rpo: required key is missing" in message


def test_invalid_name_explains_the_allowed_characters(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["agents"][0]["name"] = "Demo_Host"
    assert "'Demo_Host' is not a valid name. Fix: use lower-case letters" in _problem(raw_fleet)


def test_restore_destination_must_exist_and_match_the_engine(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["agents"][0]["targets"][0]["restore_to"] = ["orders-pg"]
    assert "restore destination 'orders-pg' uses engine 'postgresql', not 'sqlite'" in _problem(raw_fleet)
    raw_fleet["agents"][0]["targets"][0]["restore_to"] = ["nowhere"]
    assert "restore destination 'nowhere' is not a target of this fleet" in _problem(raw_fleet)


def test_unknown_retention_class_lists_the_declared_ones(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["agents"][0]["targets"][0]["retention"] = "forever"
    assert "unknown retention class 'forever'. Fix: use one of ['short', 'standard']" in _problem(raw_fleet)


def test_missing_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(FleetConfigError, match="fleet file not found"):
        load_fleet(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents: [\n")
    with pytest.raises(FleetConfigError, match="not valid YAML"):
        load_fleet(bad)
