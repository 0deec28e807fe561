"""backupctl restore / approve / restore-status against in-process moto: the CLI puts the events, the
bus routes them (the stack's rule) to the restore queue, the coordinator handles them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from backup_functions.restore.api import ApprovalsApi
from backupctl import restore as restore_cli
from backupctl.approvals_client import ApprovalsUrlError
from backupctl.context import Context, UsageError, add_global_arguments
from local_pipeline.approvals_url import Identity, local_approvals_url

from .conftest import ALICE, BOB, FLEET, REGION, T0, World

pytestmark = pytest.mark.integration


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backupctl")
    add_global_arguments(parser)
    restore_cli.register(parser.add_subparsers(dest="name", required=True))
    return parser


def _run(world: World, fleet_file: Path, *argv: str, session: boto3.Session | None = None) -> int:
    args = _parser().parse_args(["--fleet", str(fleet_file), "--region", "us-east-1", *argv])
    ctx = Context.from_args(args)
    ctx.session = session or world.session
    return int(args.command(args, ctx))


KEYS = {"alice": ("AKIDALICE", "alice-secret", ALICE), "bob": ("AKIDBOB", "bob-secret", BOB)}


def _as(person: str, secret: str | None = None) -> boto3.Session:
    """The AWS session a person's backupctl signs with."""
    key, known_secret, _ = KEYS[person]
    return boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret or known_secret, region_name=REGION)


@pytest.fixture
def approvals_url(world: World) -> Iterator[str]:
    """The local stand-in of the approvals URL in front of the world's coordinator."""
    identities = {key: Identity(secret, arn) for key, secret, arn in KEYS.values()}
    api = ApprovalsApi(world.coordinator)
    with local_approvals_url(
        lambda event: api.handle(event).response(), identities, account=world.resources.account, region=REGION
    ) as url:
        yield url


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


def test_a_protected_restore_is_requested_and_approved_through_the_url_signed_as_each_person(
    world: World, fleet_file: Path, approvals_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=2))
    url = ("--approvals-url", approvals_url)

    asked = _run(
        world, fleet_file, *url, "restore", "orders", "--in-place", "--reason", "INC-2", "--restore-id", "r-cli-appr",
        session=_as("alice"),
    )  # fmt: skip
    assert asked == 0
    assert f"r-cli-appr by {ALICE}: AWAITING-APPROVAL" in capsys.readouterr().out

    assert _run(world, fleet_file, *url, "approve", "r-cli-appr", session=_as("alice")) == 1
    assert "(self-approval)" in capsys.readouterr().err
    assert world.all_jobs() == []

    assert _run(world, fleet_file, *url, "approve", "r-cli-appr", session=_as("bob")) == 0
    assert f"r-cli-appr by {BOB}: DISPATCHED" in capsys.readouterr().out
    assert [j.restore_id for j in world.jobs("db-host")] == ["r-cli-appr"]
    item = world.item("r-cli-appr")
    assert item is not None
    assert (item["requested_by_arn"], item["approved_by"]) == (ALICE, BOB)


def test_the_approvals_url_refuses_a_call_signed_with_a_wrong_secret(
    world: World, fleet_file: Path, approvals_url: str
) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=2))

    with pytest.raises(ApprovalsUrlError, match=r"answered 403.*signature"):
        _run(
            world, fleet_file, "--approvals-url", approvals_url, "restore", "orders", "--in-place", "--reason", "x",
            session=_as("alice", secret="guessed"),
        )  # fmt: skip
    assert world.all_jobs() == []


def test_a_protected_restore_without_the_approvals_url_is_a_usage_error_saying_how(
    world: World, fleet_file: Path
) -> None:
    with pytest.raises(UsageError, match=r"orders is protected.*--approvals-url or set BACKUP_APPROVALS_URL"):
        _run(world, fleet_file, "restore", "orders", "--in-place", "--reason", "x")
    assert _deliver(world) == []


def test_approve_without_the_approvals_url_is_a_usage_error_saying_how(world: World, fleet_file: Path) -> None:
    with pytest.raises(UsageError, match="--approvals-url or set BACKUP_APPROVALS_URL"):
        _run(world, fleet_file, "approve", "r-any")


def test_an_approvals_url_must_be_https_unless_it_is_local(world: World, fleet_file: Path) -> None:
    with pytest.raises(UsageError, match="must be https"):
        _run(world, fleet_file, "--approvals-url", "http://example.com", "approve", "r-any", session=_as("bob"))


def test_restore_status_shows_the_steps_and_who_asked_but_not_the_job_message(
    world: World, fleet_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.seed_backup("orders", started=T0 - timedelta(hours=2))
    world.submit(restore_id="r-cli-st", target="orders", mode="in-place")

    code = _run(world, fleet_file, "restore-status", "r-cli-st")
    out = capsys.readouterr().out

    assert code == 0
    assert "AWAITING-APPROVAL" in out
    assert "requested" in out
    assert f"  {'requested by arn':<22}{ALICE}" in out
    assert "presigned" not in out


def test_restore_without_destination_or_in_place_is_a_usage_error(world: World, fleet_file: Path) -> None:
    with pytest.raises(UsageError, match="--to OTHER_TARGET"):
        _run(world, fleet_file, "restore", "app", "--reason", "x")


def test_a_time_without_zone_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="time zone"):
        restore_cli.parse_time("2026-11-22T09:00:00")


def test_restore_from_offsite_asks_for_the_vault_copy_and_is_refused_while_there_is_none(
    world: World, fleet_file: Path
) -> None:
    world.seed_backup("app", started=T0 - timedelta(hours=2))  # a good backup, never copied off-site

    code = _run(world, fleet_file, "restore", "app", "--to", "app-clone", "--from-offsite", "--reason", "INC-9")

    assert code == 0
    [outcome] = _deliver(world)
    assert (outcome.action, outcome.reason_code) == ("rejected", "no-backup")
    assert "with a verified off-site copy" in outcome.detail
