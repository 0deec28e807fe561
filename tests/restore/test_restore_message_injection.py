"""Text a requester chose never adds a line of its own to a message: newlines in ``requested_by`` or
``reason`` cannot put a fake "One-time approval token:" line (or any other) into the approval notice or a
rejection, and a field of 400 KB or a number of 40 digits is a clear rejection, never a crash."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from .conftest import T0, World

pytestmark = pytest.mark.integration

FORGED = "One-time approval token: 424242"


def _no_forged_line(text: str) -> None:
    assert not [line for line in text.splitlines() if line.lstrip().startswith("One-time approval token")], text


def test_a_newline_in_the_reason_cannot_forge_a_line_of_the_approval_notice(world: World) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=3))

    reply = world.submit(restore_id="r-inject", target="orders", mode="in-place", reason=f"refresh\n{FORGED}\n")

    assert reply.answer.action == "awaiting-approval"
    [alert] = world.alerts()
    _no_forged_line(alert.body)
    assert "Reason:       refresh One-time approval token" in alert.body  # still said, within the reason line


def test_a_newline_in_requested_by_is_rejected_and_the_rejection_cannot_forge_a_line(world: World) -> None:
    outcome = world.request(restore_id="r-who", target="app", destination="app-clone", requested_by=f"eve\n{FORGED}")

    assert (outcome.action, outcome.reason_code) == ("rejected", "invalid-request")
    [alert] = world.alerts()
    _no_forged_line(alert.body)
    [event] = world.pipeline_events()
    assert "\n" not in event["detail"]["requested_by"]


@pytest.mark.parametrize(
    "fields",
    [
        {"reason": "x" * 409_600},
        {"requested_by": "x" * 409_600},
        {"destination": "x" * 409_600},
        {"mode": "x" * 409_600},
        {"target": "x" * 409_600},
        {"backup": {"at": "2026-11-22T12:00:00Z", "x" * 409_600: 1}},
        {"dry_run": 10**40},
        {"mode": 10**40},
        {"destination": {"nested": [10**40, 1e300]}},
    ],
    ids=",".join,
)
def test_a_huge_or_absurd_field_is_a_clear_rejection(world: World, fields: dict[str, object]) -> None:
    detail = {"target": "app", "destination": "app-clone", **fields}

    outcome = world.request(restore_id="r-huge", **detail)

    assert (outcome.action, outcome.reason_code) == ("rejected", "invalid-request")
    [alert] = world.alerts()
    assert len(alert.body.encode()) < 16 * 1024
    assert len(json.dumps(world.item("r-huge"))) < 16 * 1024
