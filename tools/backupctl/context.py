"""Where backupctl finds the pipeline: flags, then environment variables, then the fleet file.

| flag        | environment                         | default                                        |
|-------------|-------------------------------------|------------------------------------------------|
| --fleet     | BACKUP_FLEET_FILE                   | ./fleet.yaml                                   |
| --table     | BACKUP_LEDGER_TABLE                 | <pipeline>-ledger (from the fleet's name)      |
| --bus       | BACKUP_BUS_NAME                     | <pipeline>-bus (from the fleet's name)         |
| --region    | AWS_REGION / AWS_DEFAULT_REGION     | boto3's default                                |
| --approvals-url | BACKUP_APPROVALS_URL            | none (the stack output ApprovalsUrl)           |

boto3 honours AWS_ENDPOINT_URL, so the same commands work against the local moto pipeline.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3

from backup_contracts import naming
from backup_contracts.approvals_url import URL_ENVIRONMENT
from backup_contracts.fleet import Fleet, load_fleet
from backup_functions.ledger import Ledger


class UsageError(Exception):
    """A mistake the user can fix; the message says how. Exit code 2."""


def add_global_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fleet", default=os.environ.get("BACKUP_FLEET_FILE", "fleet.yaml"), help="fleet file")
    parser.add_argument("--table", default=os.environ.get("BACKUP_LEDGER_TABLE"), help="ledger table name")
    parser.add_argument("--bus", default=os.environ.get("BACKUP_BUS_NAME"), help="event bus name")
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"), help="AWS region"
    )
    parser.add_argument(
        "--approvals-url",
        default=os.environ.get(URL_ENVIRONMENT),
        help=f"the approvals URL (stack output ApprovalsUrl; default ${URL_ENVIRONMENT}): restores into protected"
        " targets and approvals go there, signed with your AWS credentials",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


@dataclass
class Context:
    """Resolved settings and lazily created clients for one command."""

    fleet_file: Path
    table_name: str | None = None
    bus: str | None = None
    region: str | None = None
    json: bool = False
    approvals_url: str | None = None
    session: Any = field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        return cls(
            fleet_file=Path(args.fleet),
            table_name=args.table,
            bus=args.bus,
            region=args.region,
            json=args.json,
            approvals_url=getattr(args, "approvals_url", None),
        )

    @cached_property
    def fleet(self) -> Fleet:
        return load_fleet(self.fleet_file)

    @property
    def has_fleet(self) -> bool:
        return self.fleet_file.exists()

    def check_target(self, name: str) -> None:
        """Refuse a target the fleet file does not name (when there is a fleet file to ask)."""
        if not self.has_fleet:
            return
        try:
            self.fleet.target(name)
        except KeyError:
            raise UsageError(f"unknown target {name!r}: not in {self.fleet_file}") from None

    def _pipeline(self, what: str, flag: str, env: str) -> str:
        if not self.has_fleet:
            raise UsageError(f"no {what} given and no fleet file at {self.fleet_file}. Fix: pass {flag} or set {env}")
        return self.fleet.pipeline.name

    @property
    def table(self) -> str:
        return self.table_name or naming.ledger_table_name(
            self._pipeline("ledger table", "--table", "BACKUP_LEDGER_TABLE")
        )

    @property
    def bus_name(self) -> str:
        return self.bus or naming.event_bus_name(self._pipeline("event bus", "--bus", "BACKUP_BUS_NAME"))

    def aws_session(self) -> Any:
        if self.session is None:
            self.session = boto3.Session(region_name=self.region) if self.region else boto3.Session()
        return self.session

    def client(self, service: str) -> Any:
        return self.aws_session().client(service)

    def is_protected(self, name: str) -> bool:
        """Whether the fleet file marks ``name`` protected (False without a fleet file or such a target)."""
        if not self.has_fleet:
            return False
        try:
            return self.fleet.target(name)[1].protected
        except KeyError:
            return False

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.table, self.client("dynamodb"))
