"""Every rejection reason answers with a Restore Rejected event AND an SNS message that says why,
and puts no job on any agent queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from .conftest import T0, World

pytestmark = pytest.mark.integration


def _unknown_target(w: World) -> dict[str, Any]:
    return {"target": "no-such-db", "mode": "in-place"}


def _unknown_destination(w: World) -> dict[str, Any]:
    w.seed_backup("app", started=T0 - timedelta(hours=2))
    return {"target": "app", "destination": "nowhere", "mode": "clone"}


def _clone_into_source(w: World) -> dict[str, Any]:
    w.seed_backup("app", started=T0 - timedelta(hours=2))
    return {"target": "app", "destination": "app", "mode": "clone"}


def _engine_mismatch(w: World) -> dict[str, Any]:
    w.seed_backup("app", started=T0 - timedelta(hours=2))
    return {"target": "app", "destination": "shop", "mode": "clone"}


def _cross_target(w: World) -> dict[str, Any]:
    w.seed_backup("app", started=T0 - timedelta(hours=2))
    return {"target": "app", "destination": "app-other", "mode": "clone"}


def _no_backup_at_time(w: World) -> dict[str, Any]:
    w.seed_backup("app", started=T0 - timedelta(hours=2))
    return {"target": "app", "destination": "app-clone", "backup": {"at": (T0 - timedelta(days=3)).isoformat()}}


def _no_backup_at_all(w: World) -> dict[str, Any]:
    return {"target": "app", "destination": "app-clone"}


def _unknown_run(w: World) -> dict[str, Any]:
    w.seed_backup("app", started=T0 - timedelta(hours=2))
    return {"target": "app", "destination": "app-clone", "backup": {"run_id": "20261122T100000Z-doesnotexist"}}


def _failed_run(w: World) -> dict[str, Any]:
    backup = w.seed_backup("app", started=T0 - timedelta(hours=2), state="failed")
    return {"target": "app", "destination": "app-clone", "backup": {"run_id": backup.run_id}}


def _object_missing(w: World) -> dict[str, Any]:
    backup = w.seed_backup("app", started=T0 - timedelta(hours=2))
    w.s3.delete_object(Bucket=w.resources.bucket, Key=backup.key, VersionId=backup.version_id)
    return {"target": "app", "destination": "app-clone"}


def _size_mismatch(w: World) -> dict[str, Any]:
    backup = w.seed_backup("app", started=T0 - timedelta(hours=2))
    # the ledger says one size, the object has another
    w.tamper_run("app", backup.started_at, backup.run_id, bytes_stored=backup.bytes_stored + 7)
    return {"target": "app", "destination": "app-clone"}


def _sha_mismatch(w: World) -> dict[str, Any]:
    backup = w.seed_backup("app", started=T0 - timedelta(hours=2))
    w.tamper_run("app", backup.started_at, backup.run_id, sha256="f" * 64)
    return {"target": "app", "destination": "app-clone"}


def _invalid_request(w: World) -> dict[str, Any]:
    return {"target": "app", "mode": "clone"}  # a clone without a destination


CASES: dict[str, tuple[Callable[[World], dict[str, Any]], str, str]] = {
    "unknown target": (_unknown_target, "unknown-target", "no-such-db"),
    "unknown destination": (_unknown_destination, "unknown-destination", "nowhere"),
    "clone into the source itself": (_clone_into_source, "clone-into-source", "in-place"),
    "destination engine differs": (_engine_mismatch, "engine-mismatch", "mariadb"),
    "cross-target restore not allowed": (_cross_target, "cross-target-not-allowed", "restore_to"),
    "no backup at that time": (_no_backup_at_time, "no-backup", "at or before"),
    "no backup at all": (_no_backup_at_all, "no-backup", "no good backup"),
    "unknown run id": (_unknown_run, "unknown-run", "doesnotexist"),
    "run did not succeed": (_failed_run, "run-not-restorable", "failed"),
    "object missing": (_object_missing, "object-missing", "does not exist"),
    "object size differs from the run": (_size_mismatch, "checksum-mismatch", "size"),
    "object checksum differs from the run": (_sha_mismatch, "checksum-mismatch", "sha256"),
    "request does not match the schema": (_invalid_request, "invalid-request", "destination"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_rejection_emits_event_and_sns_message_and_dispatches_nothing(world: World, case: str) -> None:
    setup, code, words = CASES[case]
    fields = setup(world)

    outcome = world.request(restore_id="r-reject-1", **fields)

    assert outcome.action == "rejected"
    assert outcome.reason_code == code
    rejected = [e for e in world.pipeline_events() if e["type"] == "Restore Rejected"]
    assert len(rejected) == 1
    assert rejected[0]["detail"]["restore_id"] == "r-reject-1"
    assert rejected[0]["detail"]["reason_code"] == code
    assert words in rejected[0]["detail"]["reason"]
    alerts = world.alerts()
    assert len(alerts) == 1
    assert "RESTORE REJECTED" in alerts[0].subject
    assert code in alerts[0].subject
    assert words in alerts[0].body
    assert alerts[0].facts["reason_code"] == code
    assert world.all_jobs() == []
    item = world.item("r-reject-1")
    assert item is not None
    assert item["state"] == "rejected"
    assert item["reason_code"] == code
    assert [step["state"] for step in item["history"]] == ["requested", "rejected"]


def test_malformed_request_without_restore_id_is_refused_for_the_dlq(world: World) -> None:
    from backup_functions.restore.logic import MalformedEventError

    envelope = world.envelope("backup.requests", "Restore Requested", {"target": "app"})
    with pytest.raises(MalformedEventError, match="restore_id"):
        world.coordinator.handle(envelope)
    assert world.all_jobs() == []


def test_rejected_request_redelivered_is_not_announced_twice(world: World) -> None:
    world.request(restore_id="r-twice", target="no-such-db", mode="in-place")
    world.request(restore_id="r-twice", target="no-such-db", mode="in-place")

    assert len([e for e in world.pipeline_events() if e["type"] == "Restore Rejected"]) == 1
    assert len(world.alerts()) == 1


def test_an_object_whose_s3_checksum_differs_from_the_run_is_rejected(world: World) -> None:
    backup = world.seed_backup("app", started=T0 - timedelta(hours=2))
    # an object of the same size and run id whose content S3 checksums differently than the run recorded
    replaced = world.s3.put_object(
        Bucket=world.resources.bucket,
        Key=backup.key,
        Body=bytes(backup.bytes_stored),
        ChecksumAlgorithm="SHA256",
        Metadata={"run-id": backup.run_id},
    )
    world.tamper_run(
        "app",
        backup.started_at,
        backup.run_id,
        version_id=replaced["VersionId"],
        s3_checksum_sha256="A" * 43 + "=",
    )

    outcome = world.request(restore_id="r-s3sum", target="app", destination="app-clone")

    assert (outcome.action, outcome.reason_code) == ("rejected", "checksum-mismatch")
    assert "S3's" in outcome.detail
    assert world.all_jobs() == []
