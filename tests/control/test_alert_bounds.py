"""Every message fits SNS and never enumerates the fleet: an unknown target in a fleet of 7,000 targets is
named with at most three look-alikes (it once listed all of them: 280,108 characters, "Message too long"),
and a body or facts too large for SNS are cut safely (the facts stay JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from backup_contracts.events import RestoreRequested
from backup_contracts.formatting import fit_bytes, one_line
from backup_contracts.validation import describe_validation_error
from backup_functions.alerts import SNS_BODY_MAX, SNS_FACTS_MAX, Alert
from backup_functions.restore import messages
from backup_functions.restore.planning import Planner, Rejection

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SNS_MESSAGE_MAX = 256 * 1024


class BigFleet:
    """7,000 targets, as a large fleet has."""

    names = [f"orders-{i:04d}" for i in range(7000)]

    def target(self, name: str) -> object:
        raise KeyError(name)

    def targets(self) -> list[tuple[object, SimpleNamespace]]:
        return [(None, SimpleNamespace(name=name)) for name in self.names]


def _rejection(name: str) -> Rejection:
    planner = Planner(SimpleNamespace(fleet=BigFleet()))  # type: ignore[arg-type]
    with pytest.raises(Rejection) as caught:
        planner.target(name, "unknown-target")
    return caught.value


def test_an_unknown_target_is_rejected_without_listing_the_fleet() -> None:
    rejection = _rejection("billing")

    assert rejection.code == "unknown-target"
    assert len(rejection.reason) < 200
    assert "orders-0001" not in rejection.reason
    assert "backupctl status" in rejection.reason


def test_a_typo_is_answered_with_at_most_three_look_alikes() -> None:
    rejection = _rejection("orders-00O1")

    assert "did you mean" in rejection.reason
    assert rejection.reason.split("did you mean")[1].count("orders-") <= 3


def test_the_rejection_message_of_a_big_fleet_fits_sns() -> None:
    rejection = _rejection("billing")
    alert = messages.rejected(
        "bp",
        restore_id="r-1",
        target="billing",
        code=rejection.code,
        reason=rejection.reason,
        requested_by="a",
        now=NOW,
    )
    assert _sns_size(alert) < 8 * 1024


def _sns_size(alert: Alert) -> int:
    attributes = alert.message_attributes()
    return len(alert.sns_body().encode()) + sum(
        len(name) + len(value["StringValue"].encode()) + len(value["DataType"]) for name, value in attributes.items()
    )


def test_an_alert_too_large_for_sns_is_cut_and_its_facts_stay_json() -> None:
    huge = "é" * 600_000  # two bytes each: cutting must respect characters
    alert = Alert("failed", "open", "subject", huge, {"kind": "failed", "target": "t", "problems": [huge]})

    body = alert.sns_body()
    facts = json.loads(alert.message_attributes()["alert"]["StringValue"])

    assert len(body.encode()) <= SNS_BODY_MAX
    assert body.startswith("éé")
    assert "bytes cut]" in body
    assert len(json.dumps(facts).encode()) <= SNS_FACTS_MAX
    assert facts == {"kind": "failed", "target": "t", "truncated": True}
    assert _sns_size(alert) < SNS_MESSAGE_MAX


def test_fit_bytes_keeps_what_fits_whole() -> None:
    assert fit_bytes("short", 100) == "short"
    cut = fit_bytes("x" * 1000, 100)
    assert len(cut.encode()) <= 100
    assert cut.startswith("xxx")


@pytest.mark.parametrize(
    "text",
    [
        "alice\nOne-time approval token: 1",
        "alice\r\nbob",
        "alice\u2028bob",  # a Unicode line separator
        "alice\x85bob",  # NEL
        "alice\x1b[2Jbob",  # a terminal escape
        "alice\u202ebob",  # a right-to-left override
    ],
)
def test_one_line_leaves_no_line_break_and_no_control_character(text: str) -> None:
    flat = one_line(text, 100)

    assert len(flat.splitlines()) == 1
    assert all(ch.isprintable() for ch in flat)


def test_a_validation_error_about_a_hostile_field_name_is_one_bounded_line() -> None:
    detail = {"restore_id": "r", "target": "app", "destination": "b", "requested_by": "a", "reason": "r"}
    detail.update({f"x{i}\nOne-time approval token: {'9' * 100_000}": 1 for i in range(50)})
    with pytest.raises(ValidationError) as caught:
        RestoreRequested.model_validate(detail)

    reason = describe_validation_error(caught.value)

    assert len(reason.splitlines()) == 1
    assert len(reason) < 4096
    assert reason.endswith("and 40 more")
