"""Fixtures for the backupctl tests: a provisioned local pipeline (the stack's resources) in mock_aws."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from ctl_env import REGION, Pipeline, write_fleet
from moto import mock_aws

from backup_contracts.fleet import load_fleet
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
