"""The audit ledger: the one place that reads and writes the DynamoDB table (docs/ledger.md).

``Ledger(table_name, dynamodb)`` gives one object per item family, all writing through one
``LedgerClient``:

- ``targets``: target state (last good backup, last run and failure, drills, RPO watch);
- ``runs``: run records and GFS retention claims;
- ``jobs``: job rows and the dispatcher's tick marker and unsent jobs;
- ``agents``: heartbeats;
- ``incidents``: the one incident protocol of the audit and the watchdog;
- ``restores``: restore requests and drills;
- ``silences``: what holds pages (who, why, until when);
- ``offsite``: each good backup's copy in the off-site vault, from expected to verified;
- ``wal``: PITR targets' archived WAL files, the archive's summary (watermark, gap, lag) and its gap.

Keys and attribute names come from ``backup_contracts.ledger``; items are read as the typed models of
``backup_functions.ledger.items``. Every write is conditional or monotonic, so retries, duplicate
events and out-of-order delivery are harmless and leave the same final items.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from backup_contracts import ledger as keys
from backup_functions.ledger.agents import AgentStates
from backup_functions.ledger.client import LedgerClient, LedgerError, deserialize, serialize
from backup_functions.ledger.incidents import Claim, Incidents
from backup_functions.ledger.items import (
    DISPATCHED,
    FAILED,
    STARTED,
    SUCCEEDED,
    TERMINAL_STATES,
    UNVERIFIED,
    AgentState,
    Incident,
    JobRow,
    LedgerItem,
    RestoreItem,
    RunRecord,
    TargetState,
    WatchedItem,
    agent_subject,
    target_subject,
)
from backup_functions.ledger.jobs import Jobs, NewJob
from backup_functions.ledger.offsite import OffsiteCopies, OffsiteCopy
from backup_functions.ledger.restores import Restores
from backup_functions.ledger.runs import Runs
from backup_functions.ledger.silences import SILENCES_PK, SilenceItem, Silences
from backup_functions.ledger.targets import TargetStates
from backup_functions.ledger.wal import ARCHIVE_SK, GAP_SK, WalArchive, WalArchives, WalFile, WalGap

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

__all__ = [
    "DISPATCHED",
    "FAILED",
    "STARTED",
    "SUCCEEDED",
    "TERMINAL_STATES",
    "UNVERIFIED",
    "AgentState",
    "Claim",
    "Incident",
    "JobRow",
    "Ledger",
    "LedgerClient",
    "LedgerError",
    "LedgerItem",
    "NewJob",
    "OffsiteCopy",
    "RestoreItem",
    "RunRecord",
    "SilenceItem",
    "TargetState",
    "WalArchive",
    "WalFile",
    "WalGap",
    "WatchedItem",
    "agent_subject",
    "deserialize",
    "parse_item",
    "serialize",
    "target_subject",
]


def parse_item(item: dict[str, Any]) -> LedgerItem:
    """The typed model of any ledger item, chosen by its key."""
    pk, sk = str(item[keys.PK]), str(item[keys.SK])
    if pk.startswith("TARGET#"):
        if sk == keys.STATE_SK:
            return TargetState.model_validate(item)
        if sk.startswith(keys.JOB_SK_PREFIX):
            return JobRow.model_validate(item)
        if sk.startswith(keys.RUN_SK_PREFIX):
            return RunRecord.model_validate(item)
        if sk.startswith(keys.OFFSITE_SK_PREFIX):
            return OffsiteCopy.model_validate(item)
        if sk == ARCHIVE_SK:
            return WalArchive.model_validate(item)
        if sk == GAP_SK:
            return WalGap.model_validate(item)
    if pk.startswith("AGENT#"):
        return AgentState.model_validate(item)
    if pk.startswith("RESTORE#"):
        return RestoreItem.model_validate(item)
    if pk == keys.INCIDENTS_PK:
        return Incident.model_validate(item)
    if pk == SILENCES_PK:
        return SilenceItem.model_validate(item)
    return LedgerItem.model_validate(item)


class Ledger:
    """The ledger table, by item family. ``dynamodb`` is a low-level boto3 DynamoDB client."""

    def __init__(self, table_name: str, dynamodb: DynamoDBClient) -> None:
        self.client = LedgerClient(table_name, dynamodb)
        self.targets = TargetStates(self.client)
        self.runs = Runs(self.client)
        self.jobs = Jobs(self.client)
        self.agents = AgentStates(self.client)
        self.incidents = Incidents(self.client)
        self.restores = Restores(self.client)
        self.silences = Silences(self.client)
        self.offsite = OffsiteCopies(self.client)
        self.wal = WalArchives(self.client)

    @property
    def table_name(self) -> str:
        return self.client.table_name

    def due_watches(self, now: datetime) -> list[WatchedItem]:
        """Every item whose watch deadline has passed (the sparse index), as its typed model."""
        return [item for item in map(parse_item, self.client.due_watches(now)) if isinstance(item, WatchedItem)]
