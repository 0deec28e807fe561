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
    assert "Fix: use one of: postgresql, postgresql-physical, mariadb, sqlite, files, command" in message


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


def test_every_retention_class_keeps_the_last_three_good_backups_by_default(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["retention_classes"]["short"] = {"daily_days": 7}
    fleet = parse_fleet(raw_fleet, "fleet.yaml")
    assert fleet.retention_classes["short"].keep_last == 3


@pytest.mark.parametrize(("keep_last", "expected"), [(0, "keep at least 1"), (101, "use at most 100")])
def test_keep_last_must_keep_something_and_fit_the_ledger(
    raw_fleet: dict[str, Any], keep_last: int, expected: str
) -> None:
    raw_fleet["retention_classes"]["short"]["keep_last"] = keep_last
    message = _problem(raw_fleet)
    assert f"retention_classes > short > keep_last: keep_last {keep_last}" in message
    assert f"Fix: {expected}" in message


def test_ledger_ttl_shorter_than_the_longest_retention_is_refused(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["pipeline"]["ledger_ttl_days"] = 399  # standard keeps monthly backups 400 days
    message = _problem(raw_fleet)
    assert message.startswith("fleet.yaml: 1 problem(s):")
    assert "pipeline > ledger_ttl_days: 399 is shorter than the longest retention" in message
    assert "retention_classes > 'standard' > monthly_days: 400" in message
    assert "a restore would answer no-backup" in message
    assert "Fix: set pipeline.ledger_ttl_days to at least 400, or shorten that retention" in message


def test_ledger_ttl_equal_to_the_longest_retention_is_accepted(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["pipeline"]["ledger_ttl_days"] = 400
    assert parse_fleet(raw_fleet, "fleet.yaml").pipeline.ledger_ttl_days == 400


def test_the_default_ledger_ttl_is_checked_too(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["pipeline"].pop("ledger_ttl_days", None)
    raw_fleet["retention_classes"]["archive"] = {"daily_days": 30, "monthly_days": 2555}
    message = _problem(raw_fleet)
    assert "ledger_ttl_days: 400 is shorter than the longest retention" in message
    assert "retention_classes > 'archive' > monthly_days: 2555" in message


def test_object_lock_is_on_in_governance_mode_by_default(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["pipeline"].pop("object_lock", None)
    lock = parse_fleet(raw_fleet, "fleet.yaml").pipeline.object_lock
    assert (lock.enabled, lock.mode, lock.s3_mode) == (True, "governance", "GOVERNANCE")


@pytest.mark.parametrize("mode", ["compliance", "COMPLIANCE", "Compliance"])
def test_object_lock_compliance_mode_is_the_option(raw_fleet: dict[str, Any], mode: str) -> None:
    raw_fleet["pipeline"]["object_lock"] = {"mode": mode}
    lock = parse_fleet(raw_fleet, "fleet.yaml").pipeline.object_lock
    assert (lock.enabled, lock.mode, lock.s3_mode) == (True, "compliance", "COMPLIANCE")


def test_unknown_object_lock_mode_explains_both(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["pipeline"]["object_lock"] = {"mode": "legal-hold"}
    message = _problem(raw_fleet)
    assert "pipeline > object_lock > mode: unknown Object Lock mode 'legal-hold'" in message
    assert "Fix: use governance" in message
    assert "or compliance" in message


def test_object_lock_default_retention_days_are_refused_with_why(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["pipeline"]["object_lock"] = {"enabled": True, "mode": "governance", "days": 7}
    message = _problem(raw_fleet)
    assert "pipeline > object_lock > days: the bucket no longer has a default retention" in message
    assert "Fix: remove days" in message
