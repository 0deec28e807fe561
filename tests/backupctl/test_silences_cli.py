"""``backupctl silence / unsilence / silences``: checked against the fleet before anything is sent, put on the
bus (the watchdog's queue), answered by the watchdog's silence handling, and read back from the ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ctl_env import Pipeline

from backup_functions.clock import SystemClock
from backup_functions.envelope import receive
from backup_functions.ports import SnsNotifier
from backup_functions.silence_requests import SilenceRequests
from backupctl.cli import main

pytestmark = pytest.mark.integration


def _ctl(pipeline: Pipeline, *args: str) -> int:
    return main(["--fleet", str(pipeline.fleet_file), *args])


def _queued(pipeline: Pipeline) -> list[dict[str, Any]]:
    sqs = pipeline.session.client("sqs")
    url = pipeline.resources.silence_queue_url
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(message["Body"]) for message in messages]


def _watchdog_answers(pipeline: Pipeline, events: list[dict[str, Any]]) -> list[str]:
    notifier = SnsNotifier(pipeline.session.client("sns"), pipeline.resources.alert_topic_arn)
    desk = SilenceRequests(pipeline.fleet, pipeline.ledger, notifier, clock=SystemClock())
    return [desk.handle(receive(event).event).outcome for event in events]  # type: ignore[arg-type]


def test_silence_puts_a_checked_request_on_the_bus_and_silences_lists_it_once_recorded(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _ctl(pipeline, "--json", "silence", "--agent", "db-host", "--for", "2h", "--reason", "kernel upgrade")
    printed = json.loads(capsys.readouterr().out)
    [event] = _queued(pipeline)
    answers = _watchdog_answers(pipeline, [event])

    assert _ctl(pipeline, "--json", "silences") == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert _ctl(pipeline, "status") == 0
    status = capsys.readouterr().out

    assert code == 0
    assert (event["source"], event["detail-type"]) == ("backup.requests", "Silence Requested")
    assert event["detail"]["silence_id"] == printed["silence_id"]
    assert event["detail"]["agent"] == "db-host"
    expires = datetime.fromisoformat(event["detail"]["expires_at"])
    assert timedelta(hours=2) - timedelta(minutes=1) < expires - datetime.now(UTC) <= timedelta(hours=2)
    assert answers == ["recorded"]
    assert (listed["silence_id"], listed["state"], listed["reason"]) == (
        printed["silence_id"],
        "in force",
        "kernel upgrade",
    )
    assert f"Silence {printed['silence_id']}: holds pages about * on agent db-host until" in status


def test_unsilence_puts_the_request_and_the_silence_then_shows_as_lifted(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    _ctl(pipeline, "--json", "silence", "--target", "orders", "--for", "1h", "--reason", "r", "--id", "s-cli")
    _watchdog_answers(pipeline, _queued(pipeline))
    capsys.readouterr()

    assert _ctl(pipeline, "unsilence", "s-cli", "--reason", "done") == 0
    [event] = _queued(pipeline)
    answers = _watchdog_answers(pipeline, [event])
    said = capsys.readouterr().out
    assert _ctl(pipeline, "--json", "silences", "--all") == 0
    [listed] = json.loads(capsys.readouterr().out)

    assert "Unsilence of s-cli requested" in said
    assert event["detail-type"] == "Unsilence Requested"
    assert answers == ["lifted"]
    assert listed["state"] == "lifted"
    assert listed["lifted_by"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--target", "ordrs", "--for", "2h"], "target 'ordrs' match nothing in the fleet"),
        (["--target", "orders", "--for", "8d"], "pipeline.alerts.silence_max: 7d"),
        (["--target", "orders"], "say how long: --for DURATION (e.g. 2h) or --until TIME"),
        (["--for", "2h"], "a silence names a target pattern, an agent pattern or both"),
        (["--target", "orders", "--until", "2026-12-02T10:00:00"], "has no time zone"),
    ],
)
def test_a_silence_the_pipeline_would_refuse_is_refused_before_anything_is_sent(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    code = _ctl(pipeline, "silence", *args, "--reason", "maintenance")

    assert code == 2
    assert said in capsys.readouterr().err
    assert _queued(pipeline) == []


def test_silences_without_any_says_so(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ctl(pipeline, "silences") == 0
    assert capsys.readouterr().out == "No silence in force.\n"
