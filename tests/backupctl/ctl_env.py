"""Helpers for the backupctl tests: a fleet file and a provisioned local pipeline in moto."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import boto3
import yaml

from backup_contracts.fleet import Fleet
from backup_functions.ledger import Ledger
from local_pipeline.resources import LocalResources

REGION = "us-east-1"
# tests/conftest.py's fake credentials, for the session-scoped evidence fixture (the function-scoped
# ``aws_credentials`` fixture cannot serve it)
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
FLEET = {
    "version": 1,
    "pipeline": {"name": "ctl"},
    "retention_classes": {"standard": {"daily_days": 7}},
    "agents": [
        {
            "name": "db-host",
            "targets": [
                {"name": "orders", "engine": "postgresql", "schedule": "rate(1 day)", "rpo": "26h"},
                {"name": "shop", "engine": "mariadb", "schedule": "rate(1 day)", "rpo": "26h"},
            ],
        }
    ],
}


@dataclass
class Pipeline:
    fleet_file: Path
    fleet: Fleet
    resources: LocalResources
    session: boto3.Session

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.resources.ledger_table, self.session.client("dynamodb"))


def write_fleet(directory: Path) -> Path:
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(FLEET), encoding="utf-8")
    return path
