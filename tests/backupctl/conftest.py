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
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "BACKUP_LEDGER_TABLE", "BACKUP_BUS_NAME", "BACKUP_FLEET_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pipeline(tmp_path: Path, aws_credentials: None) -> Iterator[Pipeline]:
    fleet_file = write_fleet(tmp_path)
    fleet = load_fleet(fleet_file)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        yield Pipeline(fleet_file, fleet, provision(fleet, session), session)
