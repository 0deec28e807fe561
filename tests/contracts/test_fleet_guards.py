"""The fleet's guards on restores: where a drill may go, and who may approve a restore into a protected target.

Each refusal names the file, the entry and the fix, like every other fleet error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from backup_contracts.fleet import FleetConfigError, parse_fleet

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
APP, CLONE, ORDERS, DRILL = 0, 1, 2, 6  # indexes of fleet.yaml's demo-host targets used below
ALICE = "arn:aws:iam::123456789012:user/alice"


@pytest.fixture
def raw_fleet() -> dict[str, Any]:
    return yaml.safe_load((REPO / "fleet.yaml").read_text())


def _targets(raw: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = raw["agents"][0]["targets"]
    assert [targets[i]["name"] for i in (APP, CLONE, ORDERS, DRILL)] == [
        "app-sqlite",
        "app-sqlite-clone",
        "orders-pg",
        "app-sqlite-drill",
    ]
    return targets


def _problem(raw: dict[str, Any]) -> str:
    with pytest.raises(FleetConfigError) as caught:
        parse_fleet(raw, "fleet.yaml")
    return str(caught.value)


# --------------------------------------------------------------------------- drill destinations


def test_the_shipped_fleet_drills_into_a_scratch_target_of_its_own(raw_fleet: dict[str, Any]) -> None:
    fleet = parse_fleet(raw_fleet, "fleet.yaml")
    drill = fleet.target("app-sqlite")[1].drill
    assert drill is not None
    assert drill.destination == "app-sqlite-drill"


def test_a_drill_into_its_own_source_is_refused_with_a_scratch_target_as_the_fix(raw_fleet: dict[str, Any]) -> None:
    _targets(raw_fleet)[APP]["drill"]["destination"] = "app-sqlite"

    message = _problem(raw_fleet)

    assert message.startswith("fleet.yaml: 1 problem(s):")
    assert "agents[0] 'demo-host' > targets[0] 'app-sqlite' > drill > destination" in message
    assert "'app-sqlite' is the drilled target itself" in message
    assert "Fix: declare a scratch target of engine sqlite (e.g. app-sqlite-drill" in message


def test_a_drill_into_a_protected_target_is_refused(raw_fleet: dict[str, Any]) -> None:
    targets = _targets(raw_fleet)
    targets[DRILL]["protected"] = True

    message = _problem(raw_fleet)

    assert "targets[0] 'app-sqlite' > drill > destination: 'app-sqlite-drill' is a protected target" in message
    assert "without an approval" in message
    assert "Fix: declare a scratch target" in message


def test_a_drill_into_the_sources_own_clone_destination_is_refused(raw_fleet: dict[str, Any]) -> None:
    _targets(raw_fleet)[APP]["drill"]["destination"] = "app-sqlite-clone"  # listed in app-sqlite's restore_to

    message = _problem(raw_fleet)

    assert "'app-sqlite-clone' is where restores of 'app-sqlite' are cloned to (its restore_to)" in message
    assert "Fix: declare a scratch target" in message


def test_a_drill_into_another_targets_clone_destination_is_refused(raw_fleet: dict[str, Any]) -> None:
    targets = _targets(raw_fleet)
    targets.append({"name": "app-sqlite-2", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "2d"})
    targets[-1]["drill"] = {"schedule": "rate(7 days)", "destination": "app-sqlite-clone"}

    message = _problem(raw_fleet)

    assert "targets[7] 'app-sqlite-2' > drill > destination" in message
    assert "where restores of 'app-sqlite' are cloned to" in message


def test_a_protected_clone_destination_as_drill_destination_reports_both_reasons(raw_fleet: dict[str, Any]) -> None:
    targets = _targets(raw_fleet)
    targets[CLONE]["protected"] = True
    targets[APP]["drill"]["destination"] = "app-sqlite-clone"

    message = _problem(raw_fleet)

    assert "2 problem(s)" in message
    assert "is a protected target" in message
    assert "are cloned to" in message


# --------------------------------------------------------------------------- approvers


def test_the_shipped_fleet_names_who_may_approve_its_protected_target(raw_fleet: dict[str, Any]) -> None:
    fleet = parse_fleet(raw_fleet, "fleet.yaml")
    assert fleet.approvers_of(fleet.target("orders-pg")[1]) == tuple(raw_fleet["pipeline"]["approvers"])


def test_a_targets_own_approvers_replace_the_pipelines(raw_fleet: dict[str, Any]) -> None:
    _targets(raw_fleet)[ORDERS]["approvers"] = [ALICE]

    fleet = parse_fleet(raw_fleet, "fleet.yaml")

    assert fleet.approvers_of(fleet.target("orders-pg")[1]) == (ALICE,)


def test_a_protected_target_without_any_approver_is_refused(raw_fleet: dict[str, Any]) -> None:
    del raw_fleet["pipeline"]["approvers"]

    message = _problem(raw_fleet)

    assert "targets[2] 'orders-pg': protected target with no approvers" in message
    assert "Fix: list who may approve" in message


def test_a_roles_own_arn_is_refused_with_the_session_pattern_as_the_fix(raw_fleet: dict[str, Any]) -> None:
    raw_fleet["pipeline"]["approvers"] = ["arn:aws:iam::123456789012:role/ops/OnCall"]

    message = _problem(raw_fleet)

    assert "pipeline > approvers[0]: 'arn:aws:iam::123456789012:role/ops/OnCall' is a role's ARN" in message
    assert "Fix: write arn:aws:sts::123456789012:assumed-role/OnCall/*" in message


@pytest.mark.parametrize(
    "pattern",
    [
        "alice@example.com",  # a name anyone can type is not an identity
        "arn:aws:iam::123456789012:root",
        "arn:aws:sts::*:assumed-role/OnCall/*",  # the account must be written out
        "arn:aws:iam::123456789012:group/oncall",  # a group never signs a request
        "arn:aws:sts::123456789012:assumed-role/OnCall/a b",
    ],
)
def test_a_pattern_no_caller_can_sign_as_is_refused(raw_fleet: dict[str, Any], pattern: str) -> None:
    _targets(raw_fleet)[ORDERS]["approvers"] = [pattern]

    message = _problem(raw_fleet)

    assert f"targets[2] 'orders-pg' > approvers[0]: {pattern!r} is not the ARN of a caller" in message
    assert "Fix: write arn:aws:iam::<12-digit account>:user/<name>" in message


def test_approvers_on_a_target_that_is_not_protected_are_refused(raw_fleet: dict[str, Any]) -> None:
    _targets(raw_fleet)[CLONE]["approvers"] = [ALICE]

    message = _problem(raw_fleet)

    assert "targets[1] 'app-sqlite-clone' > approvers: only restores into a protected target need an approval" in (
        message
    )
