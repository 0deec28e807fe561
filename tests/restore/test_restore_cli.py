"""backupctl restore / approve / restore-status against in-process moto: the CLI puts the events, the
bus routes them (the stack's rule) to the restore queue, the coordinator handles them."""

from __future__ import annotations

import argparse
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupctl import restore as restore_cli
from backupctl.context import Context, UsageError, add_global_arguments

from .conftest import FLEET, T0, World, token_from

pytestmark = pytest.mark.integration


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backupctl")
    add_global_arguments(parser)
    restore_cli.register(parser.add_subparsers(dest="name", required=True))
    return parser


def _run(world: World, fleet_file: Path, *argv: str) -> int:
    args = _parser().parse_args(["--fleet", str(fleet_file), "--region", "us-east-1", *argv])
    ctx = Context.from_args(args)
    ctx.session = world.session
    return int(args.command(args, ctx))


def _deliver(world: World) -> list[Any]:
    """Drain the restore coordinator's queue (fed by the bus rule) into the coordinator."""
    outcomes = []
    url = world.resources.restore_queue_url
    while True:
        messages = world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return outcomes
        for message in messages:
            outcomes.append(world.coordinator.handle(message["Body"]))
            world.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(FLEET), encoding="utf-8")
    return path


def test_restore_command_puts_a_request_the_coordinator_dispatches(
    world: World, fleet_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = world.seed_backup("app", started=T0 - timedelta(hours=2))

    code = _run(world, fleet_file, "--json", "restore", "app", "--to", "app-clone", "--reason", "INC-1")

    assert code == 0
    restore_id = json.loads(capsys.readouterr().out)["restore_id"]
    [outcome] = _deliver(world)
    assert (outcome.restore_id, outcome.action) == (restore_id, "dispatched")
    [job] = world.jobs("db-host")
    assert job.source is not None
    assert job.source.run_id == backup.run_id


def test_restore_command_with_run_and_in_place_and_dry_run(world: World, fleet_file: Path) -> None:
    backup = world.seed_backup("app", started=T0 - timedelta(hours=2))

    code = _run(
        world,
        fleet_file,
        "restore",
        "app",
        "--run",
        backup.run_id,
        "--in-place",
        "--dry-run",
        "--reason",
        "check",
        "--restore-id",
        "r-cli-dry",
    )

    assert code == 0
    [outcome] = _deliver(world)
    assert (outcome.restore_id, outcome.action) == ("r-cli-dry", "validated")
    assert world.all_jobs() == []


def test_approve_reads_the_token_from_stdin_and_releases_the_job(
    world: World, fleet_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=2))
    _run(world, fleet_file, "restore", "orders", "--in-place", "--reason", "INC-2", "--restore-id", "r-cli-appr")
    _deliver(world)
    token = token_from(world.alerts()[0])

    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    code = _run(world, fleet_file, "approve", "r-cli-appr", "--approved-by", "bob")

    assert code == 0
    [outcome] = _deliver(world)
    assert outcome.action == "dispatched"
    assert [j.restore_id for j in world.jobs("db-host")] == ["r-cli-appr"]


def test_restore_status_shows_the_steps_and_hides_the_token_hash(
    world: World, fleet_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=2))
    world.request(restore_id="r-cli-st", target="orders", mode="in-place")

    code = _run(world, fleet_file, "restore-status", "r-cli-st")
    out = capsys.readouterr().out

    assert code == 0
    assert "AWAITING-APPROVAL" in out
    assert "requested" in out
    assert "hash" not in out


def test_restore_without_destination_or_in_place_is_a_usage_error(world: World, fleet_file: Path) -> None:
    with pytest.raises(UsageError, match="--to OTHER_TARGET"):
        _run(world, fleet_file, "restore", "app", "--reason", "x")


def test_a_time_without_zone_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="time zone"):
        restore_cli.parse_time("2026-11-22T09:00:00")
