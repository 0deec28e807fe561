"""The queue consumer against a moto server: ack, duplicates, refusals, retries, heartbeat, shutdown."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from backup_agent.config import AgentConfig
from backup_agent.consumer import BACKOFF_MAX_S, INTERRUPTED_RELEASE_S, Consumer, retry_delay
from backup_agent.events import EventBridgeSink
from backup_agent.state import CompletedJobs
from backup_contracts.naming import manifest_key

from .conftest import REGION, Stack, make_job
from .fakes import FakeEngine, writer_argv

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


class RecordingSqs:
    """Wraps the real SQS client and records visibility changes."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.visibility: list[int] = []

    def change_message_visibility(self, **kwargs: Any) -> Any:
        self.visibility.append(kwargs["VisibilityTimeout"])
        return self._client.change_message_visibility(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def make_consumer(
    stack: Stack, config: AgentConfig, argv: list[str], *, drain: bool = True, sqs: Any = None
) -> tuple[Consumer, list[FakeEngine]]:
    engines: list[FakeEngine] = []

    def factory(_target: str) -> FakeEngine:
        engine = FakeEngine(argv)
        engines.append(engine)
        return engine

    consumer = Consumer(
        config,
        sqs=sqs or stack.sqs,
        s3=boto3.client("s3", region_name=REGION),
        events=EventBridgeSink(stack.events, stack.bus),
        engine_factory=factory,
        completed=CompletedJobs(config.state_dir),
        drain=drain,
    )
    return consumer, engines


def receive_one(stack: Stack) -> dict[str, Any]:
    got = stack.sqs.receive_message(
        QueueUrl=stack.queue_url,
        MaxNumberOfMessages=1,
        WaitTimeSeconds=1,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    )
    return got["Messages"][0]


def backups(stack: Stack) -> list[str]:
    return [k for k in stack.objects() if not k.endswith(".manifest.json")]


def test_drain_runs_the_queued_job_deletes_its_message_and_exits(stack: Stack, agent_config: AgentConfig):
    stack.send_job(make_job(stack))
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB))

    assert consumer.run() == 0
    assert len(backups(stack)) == 1
    assert stack.visible_jobs() == 0
    assert stack.in_flight_jobs() == 0


def test_duplicate_delivery_of_one_job_makes_one_backup(stack: Stack, agent_config: AgentConfig):
    job = make_job(stack)
    stack.send_job(job)
    stack.send_job(job)
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB))

    consumer.run()

    assert len(backups(stack)) == 1
    assert stack.types().count("Backup Started") == 1
    assert stack.visible_jobs() + stack.in_flight_jobs() == 0


def test_redelivered_job_that_already_succeeded_is_acknowledged_without_running(
    stack: Stack, agent_config: AgentConfig
):
    job = make_job(stack)
    stack.send_job(job)
    make_consumer(stack, agent_config, writer_argv(MiB))[0].run()
    stack.send_job(job)
    consumer, engines = make_consumer(stack, agent_config, writer_argv(MiB))

    consumer.run()

    assert engines == []
    assert consumer.stats["skipped"] == 1
    assert stack.visible_jobs() + stack.in_flight_jobs() == 0


def test_succeeded_event_lost_before_emission_is_sent_on_redelivery(stack: Stack, agent_config: AgentConfig):
    job = make_job(stack)
    completed = CompletedJobs(agent_config.state_dir)
    completed.record(
        job.job_id,
        run_id="r1",
        emitted=False,
        event={
            "job_id": job.job_id,
            "run_id": "r1",
            "target": "app",
            "agent": "demo-host",
            "started_at": job.issued_at,
            "bucket": stack.bucket,
            "key": "agents/demo-host/app/x.bin.zst",
            "finished_at": job.issued_at,
            "bytes_in": 1,
            "bytes_stored": 1,
            "sha256": "0" * 64,
            "engine": "fake",
            "format": "f",
            "compression": "zstd-1",
            "duration_s": 1.0,
        },
    )
    stack.send_job(job)
    consumer, engines = make_consumer(stack, agent_config, writer_argv(MiB))

    consumer.run()

    assert engines == []
    assert stack.types() == ["Backup Succeeded"]
    assert (completed.get(job.job_id) or {})["emitted"] is True


def test_malformed_message_is_not_deleted_so_redrive_moves_it_to_the_dlq(stack: Stack, agent_config: AgentConfig):
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody='{"job_id": "x"}')
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB))

    outcome = consumer.handle(receive_one(stack))

    assert outcome == "malformed"
    assert stack.in_flight_jobs() == 1
    assert stack.types() == []


def test_job_for_another_agent_is_refused_and_left_for_the_dlq(stack: Stack, agent_config: AgentConfig):
    stack.send_job(make_job(stack).model_copy(update={"agent": "other-host"}))
    consumer, engines = make_consumer(stack, agent_config, writer_argv(MiB))

    assert consumer.handle(receive_one(stack)) == "refused"
    assert engines == []
    assert stack.in_flight_jobs() == 1


def test_job_with_a_foreign_key_prefix_is_refused(stack: Stack, agent_config: AgentConfig):
    stack.send_job(make_job(stack, key_prefix="agents/other-host/"))
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB))

    assert consumer.handle(receive_one(stack)) == "refused"
    assert stack.objects() == []


def test_failed_job_is_released_with_a_jittered_backoff(stack: Stack, agent_config: AgentConfig):
    stack.send_job(make_job(stack))
    sqs = RecordingSqs(stack.sqs)
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB, exit_code=2), sqs=sqs)

    assert consumer.handle(receive_one(stack)) == "failed"
    assert len(sqs.visibility) == 1
    assert 1 <= sqs.visibility[0] <= 30
    assert stack.in_flight_jobs() == 1


def test_failed_job_past_its_deadline_is_deleted_not_retried(stack: Stack, agent_config: AgentConfig):
    from datetime import timedelta

    stack.send_job(make_job(stack, deadline=timedelta(seconds=-1)))
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB, exit_code=2))

    assert consumer.handle(receive_one(stack)) == "failed"
    assert stack.visible_jobs() + stack.in_flight_jobs() == 0


def test_retry_delay_grows_with_receives_and_is_capped():
    assert retry_delay(1, rng=lambda: 1.0) == 30
    assert retry_delay(3, rng=lambda: 1.0) == 120
    assert retry_delay(50, rng=lambda: 1.0) == BACKOFF_MAX_S
    assert retry_delay(3, rng=lambda: 0.0) == 1


def test_visibility_is_extended_while_a_job_runs(stack: Stack, agent_config: AgentConfig):
    stack.send_job(make_job(stack))
    sqs = RecordingSqs(stack.sqs)
    consumer, _ = make_consumer(stack, agent_config, writer_argv(4 * MiB, chunk=MiB, delay=0.3), sqs=sqs)
    consumer.keepalive_interval_s = 0.2

    assert consumer.handle(receive_one(stack)) == "succeeded"
    assert sqs.visibility.count(agent_config.visibility_timeout_s) >= 2


def test_heartbeat_names_the_agent_and_its_targets(stack: Stack, agent_config: AgentConfig):
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB))
    consumer.send_heartbeat()

    beat = stack.drain_events()[0]
    assert beat["type"] == "Agent Heartbeat"
    assert beat["detail"]["agent"] == "demo-host"
    assert beat["detail"]["targets"] == ["app"]


def test_stop_interrupts_the_running_job_aborts_its_upload_and_releases_the_message(
    stack: Stack, agent_config: AgentConfig
):
    stack.send_job(make_job(stack))
    sqs = RecordingSqs(stack.sqs)
    consumer, engines = make_consumer(
        stack, agent_config, writer_argv(200 * MiB, compressible=False, delay=0.02), drain=False, sqs=sqs
    )
    runner = threading.Thread(target=consumer.run)
    runner.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not stack.uploads():
        time.sleep(0.05)
    assert stack.uploads(), "the upload never started"

    consumer.stop("SIGTERM")
    runner.join(timeout=30)

    assert not runner.is_alive()
    assert stack.objects() == []
    assert stack.uploads() == []
    failed = stack.drain_events()[-1]
    assert failed["type"] == "Backup Failed"
    assert failed["detail"]["stage"] == "dump"
    assert failed["detail"]["error"] == "interrupted by SIGTERM"
    assert sqs.visibility[-1] == INTERRUPTED_RELEASE_S  # released: visible again once our long poll ended
    assert stack.visible_jobs() + stack.in_flight_jobs() == 1
    assert engines[0].dumps[0].proc.returncode is not None


def test_manifest_key_sits_next_to_the_backup(stack: Stack, agent_config: AgentConfig):
    stack.send_job(make_job(stack))
    make_consumer(stack, agent_config, writer_argv(MiB))[0].run()

    [key] = backups(stack)
    assert manifest_key(key) in stack.objects()


def test_state_file_survives_a_new_process_view(tmp_path: Path):
    CompletedJobs(tmp_path).record("job-1", run_id="r", event={"x": 1}, emitted=True)
    assert (CompletedJobs(tmp_path).get("job-1") or {})["run_id"] == "r"


# ------------------------------------------------------------------ restore and drill jobs


class _RestoreOutcome:
    def __init__(self, ok: bool, job_id: str) -> None:
        from datetime import UTC, datetime

        from backup_contracts.events import RestoreFailed, RestoreSucceeded

        now = datetime.now(UTC)
        base = {
            "restore_id": "r1",
            "job_id": job_id,
            "agent": "demo-host",
            "source_target": "app",
            "source_run_id": "run1",
            "destination": "app",
            "mode": "clone",
            "started_at": now,
            "finished_at": now,
        }
        self.ok = ok
        self.event = (
            RestoreSucceeded(**base, duration_s=1.0)
            if ok
            else RestoreFailed(**base, stage="restore", error="boom", destination_touched=True)
        )


def _restore_job(stack: Stack):  # type: ignore[no-untyped-def]
    return make_job(stack).model_copy(
        update={"kind": "restore", "restore_id": "r1", "destination": "app", "mode": "clone"}
    )


def test_restore_job_goes_to_the_restore_runner_and_is_acknowledged(stack: Stack, agent_config: AgentConfig):
    job = _restore_job(stack)
    stack.send_job(job)
    calls: list[str] = []
    consumer, engines = make_consumer(stack, agent_config, writer_argv(MiB))
    consumer.restore_runner = lambda j, _cancel: calls.append(j.job_id) or _RestoreOutcome(True, j.job_id)

    assert consumer.handle(receive_one(stack)) == "succeeded"
    assert calls == [job.job_id]
    assert engines == []  # no backup was taken
    assert stack.visible_jobs() + stack.in_flight_jobs() == 0


def test_redelivered_restore_job_is_not_run_twice(stack: Stack, agent_config: AgentConfig):
    job = _restore_job(stack)
    calls: list[str] = []
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB))
    consumer.restore_runner = lambda j, _cancel: calls.append(j.job_id) or _RestoreOutcome(True, j.job_id)
    stack.send_job(job)
    consumer.handle(receive_one(stack))
    stack.send_job(job)

    assert consumer.handle(receive_one(stack)) == "duplicate"
    assert calls == [job.job_id]


def test_failed_restore_is_reported_once_and_not_retried(stack: Stack, agent_config: AgentConfig):
    stack.send_job(_restore_job(stack))
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB))
    consumer.restore_runner = lambda j, _cancel: _RestoreOutcome(False, j.job_id)

    assert consumer.handle(receive_one(stack)) == "failed"
    assert stack.visible_jobs() + stack.in_flight_jobs() == 0


def test_restore_job_without_a_restore_runner_is_refused(stack: Stack, agent_config: AgentConfig):
    stack.send_job(_restore_job(stack))
    consumer, _ = make_consumer(stack, agent_config, writer_argv(MiB))

    assert consumer.handle(receive_one(stack)) == "refused"
    assert stack.in_flight_jobs() == 1
