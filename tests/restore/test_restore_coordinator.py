"""The coordinator's accepted paths: dispatch, dry run, approvals, idempotency, the agent's events."""

from __future__ import annotations

import contextlib
import urllib.parse
from datetime import timedelta

import pytest

from backup_contracts.ledger import iso

from .conftest import T0, World

pytestmark = pytest.mark.integration

# --------------------------------------------------------------------------- dispatch


def test_clone_dispatches_a_restore_job_to_the_destination_agent_with_a_presigned_url(world: World) -> None:
    backup = world.seed_backup("app", started=T0 - timedelta(hours=3))

    outcome = world.request(restore_id="r-clone", target="app", destination="app-clone")

    assert outcome.action == "dispatched"
    jobs = world.jobs("db-host")
    assert len(jobs) == 1
    job = jobs[0]
    assert (job.kind, job.mode, job.target, job.destination, job.restore_id) == (
        "restore",
        "clone",
        "app-clone",
        "app-clone",
        "r-clone",
    )
    assert job.source is not None
    assert (job.source.run_id, job.source.key, job.source.version_id) == (backup.run_id, backup.key, backup.version_id)
    assert (job.source.sha256, job.source.bytes_stored) == (backup.sha256, backup.bytes_stored)
    assert job.source.manifest_facts == {"tables": 3}
    url = str(job.source.presigned_url)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert urllib.parse.unquote(urllib.parse.urlparse(url).path).endswith(backup.key)
    assert query["versionId"] == [backup.version_id]
    assert int(query["X-Amz-Expires"][0]) >= (job.deadline - T0).total_seconds()
    assert job.deadline == T0 + timedelta(minutes=60)
    assert world.pipeline_events() == []


def test_dispatched_restore_is_recorded_with_timestamped_steps_and_no_url(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))

    world.request(restore_id="r-ledger", target="app", destination="app-clone")

    item = world.item("r-ledger")
    assert item is not None
    assert item["state"] == "dispatched"
    assert [s["state"] for s in item["history"]] == ["requested", "dispatched"]
    assert item["requested_at"] == iso(T0)
    assert item["dispatched_at"] == iso(T0)
    assert "X-Amz-Signature" not in str(item)
    assert item["job_sent_at"] == iso(T0)


def test_clone_to_a_target_of_another_agent_goes_to_that_agents_queue(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    world.submit(restore_id="r-other-agent", target="orders", mode="in-place")  # noise: waits for approval

    outcome = world.submit(restore_id="r-x", target="app", destination="app-staging").answer

    # app-staging is protected: a clone into it overwrites it, so it needs an approval too
    assert outcome.action == "awaiting-approval"
    assert world.approve("r-x").answer.action == "dispatched"
    assert [j.restore_id for j in world.jobs("staging-host")] == ["r-x"]
    assert world.jobs("db-host") == []


def test_in_place_restore_of_an_unprotected_target_is_dispatched_in_place(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))

    world.request(restore_id="r-inplace", target="app", mode="in-place")

    [job] = world.jobs("db-host")
    assert (job.mode, job.target, job.destination) == ("in-place", "app", "app")
    assert job.retention_class == "standard"
    assert job.key_prefix == "agents/db-host/"


def test_latest_at_or_before_picks_the_newest_backup_dumped_by_then(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(days=2))
    middle = world.seed_backup("app", started=T0 - timedelta(days=1))
    world.seed_backup("app", started=T0 - timedelta(hours=1))

    world.request(restore_id="r-at", target="app", destination="app-clone", backup={"at": iso(T0 - timedelta(hours=5))})

    [job] = world.jobs("db-host")
    assert job.source is not None
    assert job.source.run_id == middle.run_id


def test_latest_skips_failed_runs(world: World) -> None:
    good = world.seed_backup("app", started=T0 - timedelta(days=1))
    world.seed_backup("app", started=T0 - timedelta(hours=1), state="failed")

    world.request(restore_id="r-latest", target="app", destination="app-clone")

    [job] = world.jobs("db-host")
    assert job.source is not None
    assert job.source.run_id == good.run_id


def test_run_id_selects_exactly_that_run(world: World) -> None:
    old = world.seed_backup("app", started=T0 - timedelta(days=2))
    world.seed_backup("app", started=T0 - timedelta(hours=1))

    world.request(restore_id="r-run", target="app", destination="app-clone", backup={"run_id": old.run_id})

    [job] = world.jobs("db-host")
    assert job.source is not None
    assert job.source.run_id == old.run_id


def test_dry_run_reports_what_would_be_restored_and_dispatches_nothing(world: World) -> None:
    backup = world.seed_backup("app", started=T0 - timedelta(hours=3))

    outcome = world.request(restore_id="r-dry", target="app", destination="app-clone", dry_run=True)

    assert outcome.action == "validated"
    assert world.all_jobs() == []
    [event] = world.pipeline_events()
    assert event["type"] == "Restore Validated"
    assert event["detail"]["source_run_id"] == backup.run_id
    assert event["detail"]["destination"] == "app-clone"
    assert event["detail"]["destination_agent"] == "db-host"
    item = world.item("r-dry")
    assert item is not None
    assert item["state"] == "validated"


def test_dry_run_of_a_protected_in_place_restore_on_the_bus_says_it_needs_approval_and_announces_nothing(
    world: World,
) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=3))

    world.request(restore_id="r-dry-prot", target="orders", mode="in-place", dry_run=True)

    [event] = world.pipeline_events()
    assert event["detail"]["requires_approval"] is True
    assert world.alerts() == []
    assert world.all_jobs() == []


# --------------------------------------------------------------------------- idempotency


def test_the_same_request_delivered_twice_dispatches_one_job(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))

    first = world.request(restore_id="r-dup", target="app", destination="app-clone")
    second = world.request(restore_id="r-dup", target="app", destination="app-clone")

    assert (first.action, second.action) == ("dispatched", "duplicate")
    assert len(world.jobs("db-host")) == 1


def test_a_reused_restore_id_with_other_content_is_refused_and_the_original_is_untouched(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    world.request(restore_id="r-reuse", target="app", destination="app-clone")
    world.jobs("db-host")

    outcome = world.request(restore_id="r-reuse", target="app", mode="in-place")

    assert (outcome.action, outcome.reason_code) == ("rejected", "restore-id-reused")
    assert world.jobs("db-host") == []
    item = world.item("r-reuse")
    assert item is not None
    assert (item["state"], item["mode"]) == ("dispatched", "clone")
    [event] = world.pipeline_events()
    assert event["detail"]["reason_code"] == "restore-id-reused"


def test_a_send_that_failed_after_the_state_change_is_resent_on_redelivery(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    original = world.coordinator.context.jobs

    class Failing:
        def send(self, queue_url: str, body: str, *, dedup_id: str | None = None) -> str:
            raise RuntimeError("SQS unavailable")

    world.coordinator.context.jobs = Failing()
    with contextlib.suppress(RuntimeError):
        world.request(restore_id="r-resend", target="app", destination="app-clone")
    world.coordinator.context.jobs = original
    assert world.jobs("db-host") == []

    outcome = world.request(restore_id="r-resend", target="app", destination="app-clone")

    assert outcome.action == "duplicate"
    assert [j.restore_id for j in world.jobs("db-host")] == ["r-resend"]


# --------------------------------------------------------------------------- the agent's events


def test_agent_events_move_the_restore_to_running_then_succeeded(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    world.request(restore_id="r-life", target="app", destination="app-clone")
    world.clock.advance(timedelta(minutes=1))

    assert world.agent_event("Restore Started", world.report("r-life")).action == "running"
    world.clock.advance(timedelta(minutes=2))
    outcome = world.agent_event(
        "Restore Succeeded",
        world.report(
            "r-life",
            finished_at=iso(T0 + timedelta(minutes=3)),
            duration_s=120.5,
            verification={"integrity": "ok", "tables": 3},
        ),
    )

    assert outcome.action == "succeeded"
    item = world.item("r-life")
    assert item is not None
    assert [s["state"] for s in item["history"]] == ["requested", "dispatched", "running", "succeeded"]
    assert item["duration_s"] == 120.5
    assert item["verification"] == {"integrity": "ok", "tables": 3}
    assert "RESTORE SUCCEEDED" in world.alerts()[0].subject


def test_a_started_event_after_the_end_does_not_reopen_the_restore(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    world.request(restore_id="r-ooo", target="app", destination="app-clone")
    end = world.report("r-ooo", finished_at=iso(T0 + timedelta(minutes=3)), duration_s=5.0)
    world.agent_event("Restore Succeeded", end)

    late = world.agent_event("Restore Started", world.report("r-ooo"))

    assert late.action == "duplicate"
    item = world.item("r-ooo")
    assert item is not None
    assert item["state"] == "succeeded"


def test_a_failed_restore_alerts_with_the_stage_and_whether_the_destination_was_touched(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    world.request(restore_id="r-fail", target="app", mode="in-place")
    failed = world.report(
        "r-fail",
        finished_at=iso(T0 + timedelta(minutes=3)),
        stage="restore",
        error="pg_restore exited 1",
        destination_touched=True,
    )

    outcome = world.agent_event("Restore Failed", failed)

    assert outcome.action == "failed"
    [alert] = world.alerts()
    assert "RESTORE FAILED" in alert.subject
    assert "YES - it may be half-restored" in alert.body
    assert alert.facts["destination_touched"] is True
    item = world.item("r-fail")
    assert item is not None
    assert (item["state"], item["stage"]) == ("failed", "restore")


def test_a_restore_whose_agent_never_reports_is_failed_and_alerted_after_its_deadline(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    world.request(restore_id="r-stuck", target="app", destination="app-clone")
    world.clock.advance(timedelta(minutes=60))
    assert world.coordinator.tick().restores_timed_out == []

    world.clock.advance(timedelta(minutes=16))
    report = world.coordinator.tick()

    assert report.restores_timed_out == ["r-stuck"]
    [alert] = world.alerts()
    assert "RESTORE FAILED" in alert.subject
    item = world.item("r-stuck")
    assert item is not None
    assert (item["state"], item["stage"]) == ("failed", "deadline")


def test_a_restore_interrupted_by_sigterm_before_touching_is_dispatched_again_not_failed(world: World) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=3))
    world.request(restore_id="r-term", target="app", destination="app-clone")
    world.agent_event("Restore Started", world.report("r-term"))
    interrupted = world.report(
        "r-term",
        finished_at=iso(T0 + timedelta(minutes=2)),
        stage="download",
        error="interrupted by SIGTERM",
        destination_touched=False,
    )

    outcome = world.agent_event("Restore Failed", interrupted)

    assert outcome.action == "interrupted"
    assert world.alerts() == []
    item = world.item("r-term")
    assert item is not None
    assert item["state"] == "dispatched"
    # the redelivered job then runs to its end
    world.agent_event("Restore Started", world.report("r-term"))
    done = world.agent_event(
        "Restore Succeeded", world.report("r-term", finished_at=iso(T0 + timedelta(minutes=9)), duration_s=30.0)
    )
    assert done.action == "succeeded"
