"""The off-site vault end to end on the local pipeline: a real agent's backup is replicated into the vault
(the local stand-in of S3 replication), verified there by the watchdog, and restored from it by a real
agent — on request (``source: offsite``), and when the primary object is gone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from backup_contracts.events import RestoreRequested
from backup_contracts.fleet import load_fleet
from local_pipeline.demo import SOURCE_TARGET, Demo, DemoWorld, default_fleet_file
from local_pipeline.demo_restore import RestoreDemo
from local_pipeline.moto_server import moto_server
from local_pipeline.resources import provision
from local_pipeline.runner import LocalPipeline
from local_pipeline.sample_data import create_empty_database
from local_pipeline.verify import sqlite_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@contextmanager
def first_backups(workdir: Path) -> Iterator[Demo]:
    """The demo's local pipeline after its first backup cycle (the copies not replicated yet)."""
    fleet_file = default_fleet_file()
    fleet = load_fleet(fleet_file)
    with moto_server() as endpoint:
        resources = provision(fleet, endpoint.session())
        world = DemoWorld(workdir, fleet, fleet_file, resources, LocalPipeline(endpoint, resources, fleet_file))
        demo = Demo(world, lambda _line: None)
        demo.seed()
        demo.backup_cycle()
        yield demo


@pytest.fixture
def backed_up(tmp_path: Path) -> Iterator[Demo]:
    """The demo's first backup cycle, replicated into the vault and verified there by a watchdog tick."""
    with first_backups(tmp_path) as demo:
        world = demo.world
        assert world.pipeline.replicate()
        report = world.pipeline.tick_watchdog(demo.now + timedelta(minutes=5))
        assert any(label.startswith(f"{SOURCE_TARGET}/") for label in report["offsite"]["verified"])
        yield demo


def restore_in_place(demo: Demo, restore_id: str, source: str) -> dict[str, object]:
    """An in-place restore of the source target from the bus, carried to its end by a real agent."""
    path = demo.world.database_paths[SOURCE_TARGET]
    expected = sqlite_rows(path)
    path.unlink()
    create_empty_database(path)  # the host lost its data; the restore must bring every row back
    demo.world.pipeline.put_event(
        RestoreRequested(
            restore_id=restore_id,
            target=SOURCE_TARGET,
            mode="in-place",
            requested_by="oncall@example.com",
            reason="the host lost its database",
            source=source,  # type: ignore[arg-type]
        )
    )
    RestoreDemo(demo)._agent_round()
    restore = demo.world.ledger().restores.get(restore_id)
    assert restore is not None
    assert restore.state == "succeeded", (restore.state, restore.error, restore.rejection)
    assert sqlite_rows(path) == expected
    return dict(restore.source or {})


def test_a_restore_with_source_offsite_reads_the_vault_copy_and_comes_back_equal(backed_up: Demo) -> None:
    source = restore_in_place(backed_up, "offsite-restore-1", "offsite")

    vault = backed_up.world.resources.vault
    assert vault is not None
    assert source["bucket"] == vault.bucket
    assert source["location"] == "offsite"


def test_a_restore_falls_back_to_the_vault_when_the_primary_object_is_gone(backed_up: Demo) -> None:
    world = backed_up.world
    state = world.ledger().targets.get(SOURCE_TARGET)
    assert state is not None
    assert state.last_good_key is not None
    s3 = world.pipeline.session.client("s3")
    for version in s3.list_object_versions(Bucket=world.resources.bucket, Prefix=state.last_good_key)["Versions"]:
        s3.delete_object(
            Bucket=world.resources.bucket,
            Key=version["Key"],
            VersionId=version["VersionId"],
            BypassGovernanceRetention=True,  # an admin's emergency: the primary copy is gone for good
        )

    source = restore_in_place(backed_up, "fallback-restore-1", "primary")

    assert source["location"] == "offsite"
    assert "does not exist" in str(source["fallback_from"])


def test_a_restore_from_the_vault_is_rejected_while_the_copy_is_unverified(tmp_path: Path) -> None:
    with first_backups(tmp_path) as demo:  # not replicated: the copy is pending
        world = demo.world
        world.pipeline.put_event(
            RestoreRequested(
                restore_id="too-early-1",
                target=SOURCE_TARGET,
                mode="in-place",
                requested_by="oncall@example.com",
                reason="test",
                source="offsite",
            )
        )
        world.pipeline.drain_restore_events(demo.now)

        restore = world.ledger().restores.get("too-early-1")
        assert restore is not None
        assert (restore.state, restore.reason_code) == ("rejected", "no-backup")
        assert "with a verified off-site copy" in str(restore.rejection)


def test_a_copy_replication_never_made_pages_past_the_lag_and_clears_once_it_arrives(tmp_path: Path) -> None:
    with first_backups(tmp_path) as demo:
        world, fleet = demo.world, demo.world.fleet
        world.pipeline.alerts()  # the unreachable target's failure: not what this test is about
        lag = fleet.pipeline.offsite.lag_delta if fleet.pipeline.offsite else timedelta(0)

        world.pipeline.tick_watchdog(demo.now + lag - timedelta(minutes=5))
        assert not [a for a in world.pipeline.alerts() if "OFF-SITE" in a["subject"]]
        world.pipeline.tick_watchdog(demo.now + lag + timedelta(minutes=5))
        late = [a for a in world.pipeline.alerts() if "OFF-SITE" in a["subject"]]

        assert [a["attributes"]["kind"] for a in late] == ["vault"]  # all three targets' copies: one cause
        assert "OFF-SITE REPLICATION STALLED" in late[0]["subject"]

        world.pipeline.replicate()
        world.pipeline.tick_watchdog(demo.now + lag + timedelta(minutes=10))
        cleared = [a for a in world.pipeline.alerts() if a["attributes"].get("kind") == "vault"]
        assert [a["attributes"]["phase"] for a in cleared] == ["resolved"]
