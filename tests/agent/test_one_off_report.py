"""A one-off ``backup-agent backup`` whose Backup Succeeded the bus refuses: no traceback, the backup is not
lost — the run retries, then says what is stored, where the event is kept and what to do (exit 5), and the
agent's next start puts the kept event on the bus."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_agent import cli, events, outbox
from backup_agent.events import PutEventsError
from backup_agent.state import CompletedJobs
from backup_contracts.events import BackupSucceeded

from .conftest import Stack, config_yaml

pytestmark = pytest.mark.integration

DUMP = [sys.executable, "-c", "import os, sys; sys.stdout.buffer.write(os.urandom(256 * 1024))"]


def _config(stack: Stack, tmp_path: Path) -> Path:
    targets = {"app": {"engine": "command", "dump_command": DUMP, "restore_command": ["cat"]}}
    path = tmp_path / "agent.yaml"
    path.write_text(config_yaml(stack, tmp_path / "state", targets=targets))
    return path


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """``cli.main`` installs its log handler on the root logger (on the captured stderr): undo it after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def bus_refuses(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], list[str]]:
    """``refuse(n)``: PutEvents rejects the next ``n`` Backup Succeeded entries (as EventBridge reports an
    InternalFailure entry); returns the detail types of every attempted put, in order."""
    real = events.put_events
    attempts: list[str] = []
    left = {"n": 0}

    def put(client: Any, batch: Any, bus: str, **kwargs: Any) -> list[str]:
        for event in batch:
            attempts.append(type(event).__name__)
            if isinstance(event, BackupSucceeded) and left["n"] > 0:
                left["n"] -= 1
                raise PutEventsError([{"DetailType": "Backup Succeeded", "ErrorCode": "InternalFailure"}])
        return real(client, batch, bus, **kwargs)

    def refuse(count: int) -> list[str]:
        left["n"] = count
        return attempts

    monkeypatch.setattr(events, "put_events", put)
    monkeypatch.setattr(outbox, "RETRY_DELAY_S", 0.01)
    return refuse


def _succeeded_on_bus(stack: Stack) -> list[dict[str, Any]]:
    return [e for e in stack.drain_events() if e["type"] == "Backup Succeeded"]


def test_a_refused_success_event_exits_5_naming_the_stored_backup_and_is_resent_at_the_next_start(
    stack: Stack,
    aws_env: dict[str, str],
    tmp_path: Path,
    bus_refuses: Callable[[int], list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(stack, tmp_path)
    attempts = bus_refuses(outbox.RETRY_ATTEMPTS)

    code = cli.main(["--config", str(config), "--text-logs", "backup", "app"])

    out, err = capsys.readouterr()
    assert code == cli.EXIT_UNREPORTED == 5
    assert "Traceback" not in err
    assert attempts.count("BackupSucceeded") == outbox.RETRY_ATTEMPTS  # retried before giving up
    reported = json.loads(out)
    assert reported["key"] in stack.objects()  # the valid backup is stored ...
    assert f"s3://{stack.bucket}/{reported['key']}" in err  # ... and the message says where
    assert "re-sent when this agent next starts" in err
    assert "Fix: run `backup-agent check`" in err
    (owed,) = CompletedJobs(tmp_path / "state").unreported()
    assert owed[1]["run_id"] == reported["run_id"]
    assert _succeeded_on_bus(stack) == []

    assert cli.main(["--config", str(config), "--text-logs", "run", "--once"]) == 0

    (resent,) = _succeeded_on_bus(stack)
    assert resent["detail"]["run_id"] == reported["run_id"]
    assert resent["detail"]["sha256"] == reported["sha256"]
    assert CompletedJobs(tmp_path / "state").unreported() == []


def test_a_success_event_refused_once_is_retried_and_the_run_exits_0(
    stack: Stack,
    aws_env: dict[str, str],
    tmp_path: Path,
    bus_refuses: Callable[[int], list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    attempts = bus_refuses(1)

    code = cli.main(["--config", str(_config(stack, tmp_path)), "--text-logs", "backup", "app"])

    assert code == 0, capsys.readouterr().err
    assert attempts.count("BackupSucceeded") == 2
    (delivered,) = _succeeded_on_bus(stack)
    assert delivered["detail"]["run_id"] == json.loads(capsys.readouterr().out)["run_id"]
    assert CompletedJobs(tmp_path / "state").unreported() == []


def test_a_refused_started_event_exits_4_with_the_fix_and_stores_nothing(
    stack: Stack,
    aws_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> list[str]:
        raise PutEventsError([{"DetailType": "Backup Started", "ErrorCode": "AccessDeniedException"}])

    monkeypatch.setattr(events, "put_events", refuse)
    monkeypatch.setattr(outbox, "RETRY_DELAY_S", 0.01)

    code = cli.main(["--config", str(_config(stack, tmp_path)), "--text-logs", "backup", "app"])

    err = capsys.readouterr().err
    assert code == cli.EXIT_AWS
    assert "Traceback" not in err
    assert "Fix: run `backup-agent check`" in err
    assert stack.objects() == []


class _RefusingSuccess:
    """A sink whose bus refuses every Backup Succeeded (and takes everything else)."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def emit(self, event: Any) -> None:
        if isinstance(event, BackupSucceeded):
            raise PutEventsError([{"DetailType": "Backup Succeeded", "ErrorCode": "InternalFailure"}])
        self._sink.emit(event)


def test_a_queue_job_whose_success_event_is_refused_is_kept_for_redelivery_not_deleted(
    stack: Stack, aws_env: dict[str, str], tmp_path: Path
) -> None:
    import boto3

    from backup_agent.config import parse_config
    from backup_agent.consumer import Consumer
    from backup_agent.events import EventBridgeSink

    from .conftest import REGION, make_job
    from .fakes import FakeEngine, writer_argv

    config = parse_config(config_yaml(stack, tmp_path / "state"))
    completed = CompletedJobs(config.state_dir)
    job = make_job(stack)
    stack.send_job(job)
    consumer = Consumer(
        config,
        sqs=stack.sqs,
        s3=boto3.client("s3", region_name=REGION),
        events=_RefusingSuccess(EventBridgeSink(stack.events, stack.bus)),
        engine_factory=lambda _target: FakeEngine(writer_argv(64 * 1024)),
        completed=completed,
        drain=True,
    )

    assert consumer.run() == 0

    # released for redelivery (which puts the kept event), not deleted: after a jittered backoff of 1 s or
    # more it is visible again, so count it wherever it is
    attributes = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]
    assert (
        int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 1
    )
    assert [job_id for job_id, _ in completed.unreported()] == [job.job_id]
