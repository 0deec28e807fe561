"""Archiving lag is visible in ``backupctl status``: each PITR target's WAL column (and its JSON) says how far
the archive is behind its server, and the state names a WAL incident."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import yaml
from ctl_env import FLEET, REGION
from moto import mock_aws

from backup_contracts.fleet import load_fleet
from backup_contracts.wal import Segment, WalArchived, WalServerStatus
from backup_functions.ledger import Ledger
from backupctl.cli import main
from backupctl.status import OK, WAL_GAP, StatusRow, render_status
from backupctl.wal_status import WalView
from local_pipeline.resources import provision

NOW = datetime.now(UTC).replace(microsecond=0)
WAL_RPO = timedelta(minutes=5)
PITR = {"name": "orders-pitr", "engine": "postgresql-physical", "schedule": "rate(1 day)", "rpo": "26h"}


def seg(number: int) -> str:
    return Segment(1, number).name


@dataclass
class World:
    fleet: str
    ledger: Ledger


@pytest.fixture
def world(tmp_path: Path, aws_credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name in ("BACKUP_LEDGER_TABLE", "BACKUP_BUS_NAME", "BACKUP_FLEET_FILE"):
        monkeypatch.delenv(name, raising=False)
    fleet_spec = {**FLEET, "agents": [{**FLEET["agents"][0], "targets": [*FLEET["agents"][0]["targets"], PITR]}]}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet_spec), encoding="utf-8")
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        resources = provision(load_fleet(path), session)
        yield World(str(path), Ledger(resources.ledger_table, session.client("dynamodb")))


def _archive(ledger: Ledger, number: int, at: datetime) -> None:
    event = WalArchived(
        agent="db-host",
        target="orders-pitr",
        file=seg(number),
        bucket="b",
        key=f"agents/db-host/orders-pitr/wal/{seg(number)}.zst",
        sha256="0" * 64,
        bytes_in=16 << 20,
        bytes_stored=1000,
        compression="zst",
        archived_at=at,
    )
    ledger.wal.record_file(event, recorded_at=at, wal_rpo=WAL_RPO, expires_at=at + timedelta(days=30))


def _status(fleet: str, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    main(["--fleet", fleet, *args, "status"])
    return capsys.readouterr().out


@pytest.mark.integration
def test_archiving_lag_is_visible_in_backupctl_status(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fleet, ledger = world.fleet, world.ledger
    now = datetime.now(UTC)  # backupctl reads the real clock
    _archive(ledger, 1, now - timedelta(minutes=12, seconds=1))
    server = WalServerStatus(target="orders-pitr", current_file=seg(4), checked_at=now - timedelta(minutes=11))
    ledger.wal.record_server_status("db-host", server, wal_rpo=WAL_RPO)

    table = _status(fleet, capsys=capsys)
    rows = {row["target"]: row for row in json.loads(_status(fleet, "--json", capsys=capsys))}

    header, *lines = table.splitlines()
    assert "WAL" in header.split()
    pitr_line = next(line for line in lines if line.startswith("orders-pitr"))
    assert "LAG 12m" in pitr_line
    assert next(line for line in lines if line.startswith("orders ")).split().count("-") >= 1
    wal = rows["orders-pitr"]["wal"]
    assert (wal["cell"], wal["newest_file"]) == ("LAG 12m", seg(1))
    assert 12 * 60 <= wal["lag_s"] < 13 * 60
    assert (wal["server_current_file"], wal["server_ahead"], wal["first_missing"]) == (seg(4), True, None)
    assert "wal" not in rows["orders"]  # a dump target has no WAL archive


@pytest.mark.integration
def test_a_gap_shows_in_the_wal_column(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = world.ledger
    now = datetime.now(UTC)
    _archive(ledger, 1, now - timedelta(minutes=3))
    _archive(ledger, 3, now - timedelta(minutes=2))

    out = _status(world.fleet, capsys=capsys)

    assert f"GAP at {seg(2)}" in next(line for line in out.splitlines() if line.startswith("orders-pitr"))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("view", "cell"),
    [
        (WalView(WAL_RPO, newest_archived_at=NOW - timedelta(seconds=40)), "ok 40s"),
        (WalView(WAL_RPO, newest_archived_at=NOW - timedelta(minutes=2), server_ahead=True), "behind 2m"),
        (
            WalView(WAL_RPO, newest_archived_at=NOW - timedelta(minutes=12), server_ahead=True, failing=True),
            "LAG 12m (failing)",
        ),
        (WalView(WAL_RPO, newest_archived_at=NOW, first_missing=seg(7)), f"GAP at {seg(7)}"),
        (WalView(WAL_RPO), "none yet"),
        (WalView(WAL_RPO, expected_since=NOW - timedelta(minutes=30)), "NONE 30m"),
    ],
)
def test_wal_cell(view: WalView, cell: str) -> None:
    assert view.cell(NOW) == cell


@pytest.mark.unit
def test_a_wal_incident_names_the_state() -> None:
    base = {"agent": "db-1", "engine": "postgresql-physical", "rpo": timedelta(hours=26), "last_good_at": NOW}
    ok = StatusRow(target="a", **base, wal=WalView(WAL_RPO, newest_archived_at=NOW))  # type: ignore[arg-type]
    gap = StatusRow(target="b", **base, incidents=("wal-gap",), wal=WalView(WAL_RPO, first_missing=seg(2)))  # type: ignore[arg-type]

    assert (ok.state(NOW), gap.state(NOW)) == (OK, WAL_GAP)
    assert f"GAP at {seg(2)}" in render_status([ok, gap], NOW)
