"""Helpers for the watchdog tests: an in-process moto ledger + alert topic, on a simulated clock.

Alerts are captured the way the on-call engineer receives them: an SQS queue subscribed to the SNS
topic, drained after each tick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from backup_contracts import ledger as keys
from backup_contracts.fleet import Fleet, parse_fleet
from backup_functions.ledger import Ledger as LedgerAccess
from backup_functions.ledger import NewJob
from backup_functions.ports import SnsNotifier
from backup_functions.watchdog.handler import run_tick
from backup_functions.watchdog.ports import TickReport
from local_pipeline.resources import create_ledger_table

REGION = "us-east-1"
TABLE = "wd-ledger"
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def make_fleet(targets: int = 2, agents: int = 1, *, rpo: str = "26h", schedule: str = "rate(1 day)") -> Fleet:
    per_agent = max(targets // agents, 1)
    return parse_fleet(
        {
            "version": 1,
            "pipeline": {"name": "wd", "reminder_interval_minutes": 60, "heartbeat_timeout_minutes": 30},
            "retention_classes": {"standard": {"daily_days": 7}},
            "agents": [
                {
                    "name": f"host-{a}",
                    "targets": [
                        {"name": f"db-{a}-{t}", "engine": "sqlite", "schedule": schedule, "rpo": rpo}
                        for t in range(per_agent)
                    ],
                }
                for a in range(agents)
            ],
        }
    )


def create_table(client: Any, table: str = TABLE) -> None:
    create_ledger_table(client, table)


@dataclass
class Received:
    subject: str
    body: str
    attributes: dict[str, str]

    @property
    def facts(self) -> dict[str, Any]:
        return json.loads(self.attributes["alert"])

    @property
    def kind(self) -> str:
        return self.attributes["kind"]

    @property
    def phase(self) -> str:
        return self.attributes["phase"]


@dataclass
class Env:
    dynamodb: Any
    sns: Any
    sqs: Any
    topic_arn: str
    inbox_url: str
    ledger: LedgerAccess
    fleet: Fleet
    dispatcher_running: bool = True  # its tick marker follows the clock (False: it stays where a test put it)

    def tick(self, now: datetime, fleet: Fleet | None = None) -> TickReport:
        if self.dispatcher_running:
            self.ledger.jobs.advance_marker(now, "fleet")
        return run_tick(now, fleet=fleet or self.fleet, ledger=self.ledger, notifier=self.notifier)

    @property
    def notifier(self) -> SnsNotifier:
        return SnsNotifier(self.sns, self.topic_arn)

    def inbox(self) -> list[Received]:
        """Every alert delivered since the last call (the SNS → SQS subscription, drained)."""
        received: list[Received] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return received
            for message in batch:
                envelope = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                received.append(Received(envelope.get("Subject", ""), envelope["Message"], attributes))
                self.sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])

    # ----------------------------------------------------------------- ledger items, written with CONTROL's Ledger

    def good_backup(self, target: str, at: datetime, rpo: timedelta = timedelta(hours=26), run: str = "") -> None:
        agent = self.fleet.target(target)[0].name
        self.ledger.targets.record_good_backup(
            target,
            agent,
            run_id=run or f"run-{target}-{at:%Y%m%d%H%M}",
            finished_at=at,
            rpo=rpo,
            bucket="b",
            key=f"agents/{agent}/{target}/x.zst",
            version_id=None,
            bytes_stored=1234,
            sha256="0" * 64,
            engine="sqlite",
        )

    def dispatched_job(
        self,
        target: str,
        issued: datetime,
        *,
        start_grace: timedelta = timedelta(minutes=30),
        deadline: timedelta = timedelta(hours=2),
    ) -> NewJob:
        agent = self.fleet.target(target)[0].name
        job = NewJob(
            job_id=keys.scheduled_job_id(target, issued),
            target=target,
            agent=agent,
            engine="sqlite",
            trigger="schedule",
            slot=issued,
            issued_at=issued,
            deadline=issued + deadline,
            start_deadline=issued + start_grace,
            rpo=timedelta(hours=26),
            expires_at=issued + timedelta(days=30),
            message="{}",
            attributes={"kind": "backup"},
        )
        assert self.ledger.jobs.create(job)
        return job

    def heartbeat(self, agent: str, at: datetime, timeout: timedelta = timedelta(minutes=30)) -> None:
        self.ledger.agents.record_heartbeat(agent, version="1", targets=[], sent_at=at, timeout=timeout)

    def incidents(self) -> list[dict[str, Any]]:
        return self.ledger.client.query(keys.INCIDENTS_PK)


def make_env() -> Env:
    """The ledger table, the alert topic and its SQS inbox, in the active mock_aws."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    create_table(dynamodb)
    topic_arn = sns.create_topic(Name="wd-alerts")["TopicArn"]
    inbox_url = sqs.create_queue(QueueName="wd-alerts-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    return Env(dynamodb, sns, sqs, topic_arn, inbox_url, LedgerAccess(TABLE, dynamodb), make_fleet())
