"""Hypothesis against the restore coordinator (moto in-process): whatever arrives — on the bus, at the
approvals URL, or as a tick at any time — it is handled or refused with a reason (``MalformedEventError``,
an HTTP 4xx answer), never an exception. Budget and profiles: ``tests/fuzzing.py``."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from typing import Any

import pytest
from fuzzing import HOSTILE_TEXT, budget, case, json_values, mutated
from hypothesis import given
from hypothesis import strategies as st

from backup_contracts.naming import agent_event_source
from backup_functions.envelope import MalformedEventError

from .conftest import ALICE, BOB, CAROL, T0, World

pytestmark = pytest.mark.integration

TARGETS = ["app", "app-clone", "app-drill", "app-staging", "orders", "orders-copy", "shop", "nowhere"]
RESTORE_IDS = ["r-1", "r-2", "r-3", "r-disp"]
SOURCES = [
    "backup.requests",
    agent_event_source("db-host"),
    agent_event_source("staging-host"),
    agent_event_source("evil"),
    "backup.agent",
    "aws.events",
    "backup.pipeline",
]
DETAIL_TYPES = [
    "Restore Requested",
    "Restore Approved",
    "Restore Started",
    "Restore Succeeded",
    "Restore Failed",
    "Scheduled Event",
    "Backup Started",
]


def _request(draw: st.DrawFn) -> dict[str, Any]:
    base = {
        "restore_id": draw(st.sampled_from(RESTORE_IDS)),
        "target": draw(st.sampled_from(TARGETS)),
        "destination": draw(st.sampled_from(TARGETS)),
        "mode": draw(st.sampled_from(["clone", "in-place"])),
        "backup": draw(st.sampled_from([{"latest": True}, {"run_id": "r-x"}, {"at": T0.isoformat()}, {}])),
        "requested_by": "eve@example.com",
        "reason": "fuzz",
        "dry_run": draw(st.booleans()),
    }
    return draw(mutated(base))


def _report(draw: st.DrawFn, world: World) -> dict[str, Any]:
    base = world.report("r-disp") if world.item("r-disp") else {"restore_id": "r-disp"}
    base |= {
        "finished_at": (world.clock.now() + timedelta(minutes=5)).isoformat(),
        "duration_s": 300.0,
        "verification": {"tables": 3},
        "stage": "restore",
        "error": "boom",
        "destination_touched": draw(st.booleans()),
    }
    return draw(mutated(base))


@st.composite
def bus_bodies(draw: st.DrawFn, world: World) -> str:
    kind = draw(st.sampled_from(["request", "report", "approval", "random"]))
    detail: Any
    if kind == "request":
        detail = _request(draw)
    elif kind == "report":
        detail = _report(draw, world)
    elif kind == "approval":
        detail = draw(mutated({"restore_id": draw(st.sampled_from(RESTORE_IDS)), "approved_by": "bob"}))
    else:
        detail = draw(json_values)
    envelope: dict[str, Any] = {
        "source": draw(st.sampled_from(SOURCES) | st.sampled_from(HOSTILE_TEXT)),
        "detail-type": draw(st.sampled_from(DETAIL_TYPES) | st.sampled_from(HOSTILE_TEXT)),
        "detail": detail,
    }
    if draw(st.integers(0, 20)) == 0:
        envelope = draw(mutated(envelope))
    return json.dumps(envelope, default=str)


def _prepare(world: World) -> None:
    if not getattr(world, "fuzz_ready", False):
        world.seed_backup("app", started=T0 - timedelta(hours=3))
        world.seed_backup("orders", started=T0 - timedelta(hours=3))
        world.request(restore_id="r-disp", target="app", destination="app-clone")
        world.fuzz_ready = True  # type: ignore[attr-defined]


@budget(450)
@given(data=st.data())
def test_no_bus_event_crashes_the_coordinator(world: World, data: st.DataObject) -> None:
    _prepare(world)
    body = data.draw(bus_bodies(world), label="body")
    with case("restore coordinator (bus)"):
        with contextlib.suppress(MalformedEventError):  # a clear rejection: to the DLQ with its reason
            world.coordinator.handle(body)
        if data.draw(st.integers(0, 9), label="tick?") == 0:
            world.clock.advance(timedelta(minutes=data.draw(st.integers(0, 60 * 24 * 9), label="minutes")))
            world.coordinator.tick()


@budget(250)
@given(data=st.data())
def test_no_call_of_the_approvals_url_crashes_the_coordinator(world: World, data: st.DataObject) -> None:
    _prepare(world)
    path = data.draw(st.sampled_from(["/restores", "/approvals", "/", "/restores/x"]), label="path")
    if data.draw(st.booleans(), label="json body"):
        request = _request(data.draw)
        request.pop("requested_by", None)
        body: Any = request if path == "/restores" else data.draw(mutated({"restore_id": "r-1"}))
        text = json.dumps(body, default=str)
    else:
        text = data.draw(st.text(max_size=50) | json_values.map(lambda v: json.dumps(v, default=str)), label="body")
    caller = data.draw(st.sampled_from([ALICE, BOB, CAROL, None, "", "arn:aws:iam::1:user/x\nbob"]), label="caller")
    with case("restore coordinator (approvals URL)"):
        reply = world.url(path, text, caller)
    assert reply.status in (200, 400, 403, 404, 405)
