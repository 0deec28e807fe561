"""Fixtures for the backupctl tests: a provisioned local pipeline (the stack's resources) in mock_aws, and the
evidence report of ten simulated days."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from ctl_env import FAKE_CREDENTIALS, REGION, Pipeline, write_fleet
from moto import mock_aws
from report_world import DAY, DAYS, EvidencePages, ReportWorld

from backup_contracts.fleet import load_fleet
from backupctl.cli import main
from local_pipeline.resources import provision


@pytest.fixture
def pipeline(tmp_path: Path, aws_credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    for name in ("BACKUP_LEDGER_TABLE", "BACKUP_BUS_NAME", "BACKUP_FLEET_FILE"):  # backupctl's own settings
        monkeypatch.delenv(name, raising=False)
    fleet_file = write_fleet(tmp_path)
    fleet = load_fleet(fleet_file)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        yield Pipeline(fleet_file, fleet, provision(fleet, session), session)


@pytest.fixture(scope="session")
def evidence_pages(tmp_path_factory: pytest.TempPathFactory) -> EvidencePages:
    """Simulated once per session (about 10 s): the integration and the browser tests read the same pages.
    The mock and the environment end with the fixture's setup: other tests never run inside them."""
    directory = tmp_path_factory.mktemp("evidence")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "BACKUP_LEDGER_TABLE", "BACKUP_BUS_NAME", "BACKUP_FLEET_FILE"):
            patch.delenv(name, raising=False)
        with mock_aws():
            world = ReportWorld.create(directory)
            world.run()
            period = ["--since", world.t0.isoformat(), "--until", (world.t0 + DAYS * DAY).isoformat()]
            base = ["--fleet", str(world.fleet_file), "report", *period]
            html, twin = directory / "evidence.html", directory / "evidence.json"
            assert main([*base, "--html", str(html), "--json", str(twin)]) == 0
            with contextlib.redirect_stdout(io.StringIO()) as out:
                assert main([*base, "--json"]) == 0
            with contextlib.redirect_stdout(io.StringIO()) as table:
                assert main(base) == 0
    return EvidencePages(world, html, twin, out.getvalue(), table.getvalue())
