"""Hypothesis against the audit, the dispatcher and the watchdog (moto in-process): hostile agent events,
Backup Requested details, silence requests and ticks at any time are handled or refused with a reason
(``MalformedEventError`` for a record that is no contract event), never an exception. The watchdog ticks
over the ledger those hostile events left. Budget and profiles: ``tests/fuzzing.py``."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from fuzzing import HOSTILE_TEXT, budget, case, json_values, mutated, times_around
from hypothesis import given
from hypothesis import strategies as st

from backup_contracts import ledger as keys
from backup_contracts.events import SilenceRequested, UnsilenceRequested
from backup_contracts.naming import agent_event_source, backup_object_key
from backup_functions.audit.logic import Auditor
from backup_functions.dispatcher import handler as dispatcher_handler
from backup_functions.envelope import MalformedEventError, receive
from backup_functions.ports import EventBridgePublisher, SnsNotifier
from backup_functions.silence_requests import SilenceRequests
from backup_functions.watchdog.handler import run_tick

from .conftest import START, Aws, eventbridge_event

pytestmark = pytest.mark.integration

BODY = b"-- PostgreSQL database dump\n" + b"x" * 512
SHA = hashlib.sha256(BODY).hexdigest()
TARGETS = ["orders-0", "orders-1", "shop-0", "nowhere"]
DETAIL_TYPES = ["Backup Started", "Backup Succeeded", "Backup Failed", "Agent Heartbeat", "Restore Succeeded"]


@st.composite
def agent_events(draw: st.DrawFn, aws: Aws) -> dict[str, Any]:
    started = draw(times_around(START), label="started")
    run = draw(st.sampled_from(["r1", "r2", "r3"]), label="run")
    target = draw(st.sampled_from(TARGETS), label="target")
    agent = draw(st.sampled_from(["db-1", "db-2", "evil"]), label="agent")
    base: dict[str, Any] = {
        "job_id": keys.scheduled_job_id(target, started.replace(minute=0, second=0, microsecond=0)),
        "run_id": run,
        "target": target,
        "agent": agent,
        "started_at": started.isoformat(),
        "bucket": draw(st.sampled_from([aws.bucket, aws.bucket, "someone-elses-bucket", "Not A Bucket!", ""])),
        "key": draw(st.sampled_from([backup_object_key(agent, target, run, started, "pgdump.zst"), "", "x/../y"])),
    }
    detail_type = draw(st.sampled_from(DETAIL_TYPES), label="detail-type")
    finished = started + timedelta(seconds=draw(st.integers(-60, 7200), label="took"))
    if detail_type == "Backup Succeeded":
        base |= {
            "finished_at": finished.isoformat(),
            "bytes_in": len(BODY),
            "bytes_stored": draw(st.sampled_from([len(BODY), 1, 2**53 - 1])),
            "sha256": draw(st.sampled_from([SHA, "0" * 64])),
            "engine": "postgresql",
            "format": "pg_dump-custom",
            "compression": "zstd",
            "duration_s": 180.0,
        }
    elif detail_type == "Backup Failed":
        base |= {"finished_at": finished.isoformat(), "stage": "dump", "exit_code": 1, "error": "pg_dump failed"}
    elif detail_type == "Agent Heartbeat":
        base = {"agent": agent, "version": "0.1", "targets": [target], "sent_at": started.isoformat()}
    detail = draw(mutated(base)) if draw(st.booleans(), label="mutate") else base
    source = draw(
        st.sampled_from([agent_event_source(agent), agent_event_source("db-1"), "backup.agent", *HOSTILE_TEXT])
    )
    return eventbridge_event(source, detail_type, detail, started)


def _audit(auditor: Auditor, aws: Aws, event: dict[str, Any], store: bool) -> None:
    key, run_id = event["detail"].get("key"), event["detail"].get("run_id")
    storable = isinstance(key, str) and key.startswith("agents/") and key.isprintable()
    if store and storable and isinstance(run_id, str) and run_id.isascii() and run_id.isprintable():
        aws.put_backup_object(key, BODY, run_id=run_id)  # (S3 metadata takes printable ASCII only)
    try:
        delivery = receive(json.dumps(event, default=str))
    except MalformedEventError:
        return  # a clear rejection: the record goes to the DLQ with its reason
    auditor.handle(delivery.event, sender=delivery.sender)


@budget(500)
@given(data=st.data())
def test_no_agent_event_crashes_the_audit(aws: Aws, auditor: Auditor, data: st.DataObject) -> None:
    event = data.draw(agent_events(aws), label="event")
    store = data.draw(st.booleans(), label="object stored")
    with case("audit"):
        _audit(auditor, aws, event, store)


@budget(100)
@given(data=st.data())
def test_the_watchdog_never_crashes_over_what_hostile_events_left(
    aws: Aws, auditor: Auditor, fleet, data: st.DataObject
) -> None:
    event = data.draw(agent_events(aws), label="event")
    now = auditor.clock.advance(timedelta(minutes=data.draw(st.integers(0, 3 * 24 * 60), label="minutes")))  # type: ignore[attr-defined]
    with case("watchdog"):
        _audit(auditor, aws, event, store=False)
        run_tick(
            now,
            fleet=fleet,
            ledger=aws.ledger,
            notifier=SnsNotifier(aws.client("sns"), aws.topic_arn),
            events=EventBridgePublisher(aws.client("events"), "default"),
        )


@st.composite
def dispatcher_events(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 4), label="tick?") == 0:
        return {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    base = {
        "request_id": draw(st.sampled_from(["q-1", "q-2", "q-3"])),
        "target": draw(st.sampled_from(TARGETS)),
        "requested_by": "eve@example.com",
        "reason": "fuzz",
    }
    detail = draw(mutated(base) | json_values)
    return {"source": "backup.requests", "detail-type": "Backup Requested", "detail": detail}


@budget(300)
@given(data=st.data())
def test_no_request_or_tick_crashes_the_dispatcher(dispatcher, clock, lambda_context, data: st.DataObject) -> None:
    event = data.draw(dispatcher_events(), label="event")
    clock.advance(timedelta(minutes=data.draw(st.integers(0, 24 * 60), label="minutes")))
    with case("dispatcher"):
        dispatcher_handler.handler(event, lambda_context)


@st.composite
def silence_events(draw: st.DrawFn) -> dict[str, Any]:
    detail_type = draw(st.sampled_from(["Silence Requested", "Unsilence Requested"]), label="detail-type")
    base: dict[str, Any] = {
        "silence_id": draw(st.sampled_from(["s-1", "s-2", "s 3", ""]), label="id"),
        "requested_by": "eve@example.com",
    }
    if detail_type == "Silence Requested":
        expires = draw(times_around(START), label="expires")
        base |= {"expires_at": expires.isoformat(), "reason": "fuzz"}
        for name in ("target", "agent"):
            glob = draw(st.sampled_from([None, "*", "orders-*", "db-[12]", "nowhere", "[", "?" * 64]), label=name)
            if glob is not None:
                base[name] = glob
        if draw(st.booleans(), label="booked ahead"):
            base["starts_at"] = draw(times_around(START), label="starts").isoformat()
    detail = draw(mutated(base) | json_values) if draw(st.booleans(), label="mutate") else base
    source = draw(st.sampled_from(["backup.requests", "backup.requests", *HOSTILE_TEXT]), label="source")
    return eventbridge_event(source, detail_type, detail, START)


@budget(200)
@given(data=st.data())
def test_no_silence_request_crashes_the_watchdog_and_its_ticks_go_on(
    aws: Aws, auditor: Auditor, fleet, data: st.DataObject
) -> None:
    silence = data.draw(silence_events(), label="silence")
    failure = data.draw(agent_events(aws), label="event")
    now = auditor.clock.advance(timedelta(minutes=data.draw(st.integers(0, 2 * 24 * 60), label="minutes")))  # type: ignore[attr-defined]
    notifier = SnsNotifier(aws.client("sns"), aws.topic_arn)
    with case("silences"):
        try:
            request = receive(json.dumps(silence, default=str)).event
        except MalformedEventError:
            request = None  # a clear rejection: the record goes to the DLQ with its reason
        if isinstance(request, SilenceRequested | UnsilenceRequested):
            SilenceRequests(fleet, aws.ledger, notifier, clock=auditor.clock).handle(request)
        _audit(auditor, aws, failure, store=False)
        run_tick(now, fleet=fleet, ledger=aws.ledger, notifier=notifier)
