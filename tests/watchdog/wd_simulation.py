"""A whole control plane on a simulated clock, in-process (mock_aws): the real dispatcher tick, a fake
agent that answers each job through the real audit logic (S3 object with SSE-KMS and a matching
checksum, Started/Succeeded events, heartbeats), and the real watchdog tick. Alerts are read from the
SNS topic's SQS subscription, as the on-call engineer receives them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import boto3
from simulated_objects import date_object

from backup_contracts.events import (
    AgentHeartbeat,
    BackupFailed,
    BackupStarted,
    BackupSucceeded,
    SilenceRequested,
    UnsilenceRequested,
)
from backup_contracts.fleet import Fleet, parse_fleet
from backup_contracts.jobs import Job
from backup_contracts.naming import backup_object_key
from backup_functions.audit.logic import AuditConfig, Auditor
from backup_functions.dispatcher import logic as dispatcher
from backup_functions.ledger import Ledger
from backup_functions.ports import S3ObjectStore, SnsNotifier, SqsJobQueue
from backup_functions.silence_requests import SilenceRequests
from backup_functions.watchdog.handler import run_tick
from local_pipeline.clock import SimulatedClock
from local_pipeline.resources import LocalResources, provision

TICK = timedelta(minutes=5)
HEARTBEAT_EVERY = timedelta(minutes=15)  # agents heartbeat every 15 min; the timeout is 30 min


def fleet_of(agents: dict[str, list[tuple[str, str, str]]], *, name: str = "sim") -> Fleet:
    """agents: {agent: [(target, schedule, rpo), ...]}."""
    return parse_fleet(
        {
            "version": 1,
            "pipeline": {"name": name, "reminder_interval_minutes": 60, "heartbeat_timeout_minutes": 30},
            "retention_classes": {"standard": {"daily_days": 7, "weekly_days": 30}},
            "agents": [
                {
                    "name": agent,
                    "targets": [{"name": t, "engine": "sqlite", "schedule": s, "rpo": r} for t, s, r in targets],
                }
                for agent, targets in agents.items()
            ],
        }
    )


@dataclass
class Alert:
    at: datetime
    subject: str
    body: str
    kind: str
    phase: str
    target: str | None
    agent: str | None


@dataclass
class World:
    fleet: Fleet
    resources: LocalResources
    session: boto3.Session
    clock: SimulatedClock
    down: set[str] = field(default_factory=set)  # agents that neither heartbeat nor take jobs
    alerts: list[Alert] = field(default_factory=list)
    runs: int = 0
    tick_start: datetime = field(init=False)
    last_heartbeat: dict[str, datetime] = field(default_factory=dict)
    behind: set[str] = field(default_factory=set)  # agents back from an outage, with jobs waiting
    failing: set[str] = field(default_factory=set)  # targets whose dumps fail (exit 2) until removed

    def __post_init__(self) -> None:
        self.tick_start = self.clock.now()
        self.dynamodb = self.session.client("dynamodb")
        self.sqs = self.session.client("sqs")
        self.s3 = self.session.client("s3")
        self.sns = self.session.client("sns")
        self.ledger = Ledger(self.resources.ledger_table, self.dynamodb)
        self.dispatch_cfg = dispatcher.DispatchConfig.from_fleet(
            self.fleet, bucket=self.resources.bucket, queue_url_prefix=self.resources.job_queue_url_prefix
        )
        self.auditor = Auditor(
            self.fleet,
            self.ledger,
            objects=S3ObjectStore(self.s3),
            notifier=SnsNotifier(self.sns, self.resources.alert_topic_arn),
            config=AuditConfig.from_fleet(
                self.fleet, bucket=self.resources.bucket, kms_key_arn=self.resources.kms_key_arn
            ),
            clock=self.clock,
        )

    @classmethod
    def create(cls, fleet: Fleet, start: datetime) -> World:
        session = boto3.Session(region_name="us-east-1")
        return cls(fleet, provision(fleet, session), session, SimulatedClock(start))

    # ------------------------------------------------------------------ the parts

    def dispatcher_tick(self) -> int:
        """Returns how many jobs the tick put on queues."""
        result = dispatcher.tick(self.fleet, self.ledger, SqsJobQueue(self.sqs), self.dispatch_cfg, self.clock.now())
        return result.sent + result.resent

    def watchdog_tick(self) -> None:
        run_tick(
            self.clock.now(),
            fleet=self.fleet,
            ledger=self.ledger,
            notifier=SnsNotifier(self.sns, self.resources.alert_topic_arn),
        )
        self.collect_alerts()

    def heartbeat(self, agent: str) -> None:
        targets = [t.name for a, t in self.fleet.targets() if a.name == agent]
        heartbeat = AgentHeartbeat(agent=agent, version="sim", targets=targets, sent_at=self.clock.now())
        self.auditor.handle(heartbeat, sender=agent)

    def agent_work(self, agent: str) -> None:
        """Take every job from the agent's queue; each backup starts now and succeeds 30 s later."""
        url = self.resources.agent_queue_urls[agent]
        while True:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            for message in messages:
                self._run_job(Job.model_validate_json(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _run_job(self, job: Job) -> None:
        self.runs += 1
        started = self.tick_start  # the agent runs its jobs in parallel: all start with the tick
        run_id = f"run-{self.runs}"
        body = f"backup of {job.target} for {job.job_id}".encode()
        sha = hashlib.sha256(body).hexdigest()
        key = backup_object_key(job.agent, job.target, run_id, started, "db.zst")
        common: dict[str, Any] = {
            "job_id": job.job_id,
            "run_id": run_id,
            "target": job.target,
            "agent": job.agent,
            "trigger": job.trigger,
            "started_at": started,
            "bucket": job.bucket,
            "key": key,
        }
        self.auditor.handle(BackupStarted(**common), sender=job.agent)
        if job.target in self.failing:
            failed = BackupFailed(
                **common, finished_at=started + timedelta(seconds=5), stage="dump", exit_code=2, error="dump failed"
            )
            self.clock.set(max(self.clock.now(), failed.finished_at))
            self.auditor.handle(failed, sender=job.agent)
            self.collect_alerts()
            return
        put = self.s3.put_object(
            Bucket=job.bucket,
            Key=key,
            Body=body,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.resources.kms_key_arn,
            Metadata={"sha256": sha, "run-id": run_id},
        )
        finished = started + timedelta(seconds=30)
        date_object(job.bucket, key, finished)
        self.clock.set(max(self.clock.now(), finished))
        self.auditor.handle(
            BackupSucceeded(
                **common,
                finished_at=finished,
                version_id=put.get("VersionId"),
                bytes_in=len(body),
                bytes_stored=len(body),
                sha256=sha,
                engine="sqlite",
                format="sqlite",
                compression="zstd",
                duration_s=30.0,
            ),
            sender=job.agent,
        )
        self.collect_alerts()

    def collect_alerts(self) -> list[Alert]:
        new: list[Alert] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.resources.alerts_inbox_url, MaxNumberOfMessages=10)
            messages = batch.get("Messages", [])
            if not messages:
                break
            for message in messages:
                envelope = json.loads(message["Body"])
                attrs = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                new.append(
                    Alert(
                        at=self.clock.now(),
                        subject=envelope.get("Subject", ""),
                        body=envelope["Message"],
                        kind=attrs.get("kind", ""),
                        phase=attrs.get("phase", ""),
                        target=attrs.get("target"),
                        agent=attrs.get("agent"),
                    )
                )
                self.sqs.delete_message(
                    QueueUrl=self.resources.alerts_inbox_url, ReceiptHandle=message["ReceiptHandle"]
                )
        self.alerts.extend(new)
        return new

    def silence(self, *, hours: float, target: str | None = None, agent: str | None = None, **more: Any) -> str:
        """A ``Silence Requested`` as the watchdog's queue delivers it; returns its outcome."""
        request = SilenceRequested(
            silence_id=more.pop("silence_id", f"s-{len(self.alerts)}-{self.clock.now():%H%M}"),
            target=target,
            agent=agent,
            expires_at=more.pop("expires_at", self.clock.now() + timedelta(hours=hours)),
            requested_by=more.pop("requested_by", "alice@example.com"),
            reason=more.pop("reason", "database upgrade"),
            **more,
        )
        answer = self.silence_requests().handle(request)
        self.collect_alerts()
        return answer.outcome

    def unsilence(self, silence_id: str) -> str:
        request = UnsilenceRequested(silence_id=silence_id, requested_by="bob@example.com", reason="done early")
        answer = self.silence_requests().handle(request)
        self.collect_alerts()
        return answer.outcome

    def silence_requests(self) -> SilenceRequests:
        notifier = SnsNotifier(self.sns, self.resources.alert_topic_arn)
        return SilenceRequests(self.fleet, self.ledger, notifier, clock=self.clock)

    # ------------------------------------------------------------------ time

    def step(self) -> None:
        """One 5-minute period: dispatcher tick, agents work and heartbeat, watchdog tick a minute later."""
        start = self.tick_start = self.clock.now()
        sent = self.dispatcher_tick()
        for agent in self.fleet.agents:
            if agent.name in self.down:
                self.behind.add(agent.name)
                continue
            if start - self.last_heartbeat.get(agent.name, start - HEARTBEAT_EVERY) >= HEARTBEAT_EVERY:
                self.heartbeat(agent.name)
                self.last_heartbeat[agent.name] = start
            if sent or agent.name in self.behind:  # an idle long poll would find nothing: skip the call
                self.agent_work(agent.name)
                self.behind.discard(agent.name)
        self.clock.set(max(self.clock.now(), start + timedelta(minutes=1)))
        self.watchdog_tick()
        self.clock.set(start + TICK)

    def run_until(self, end: datetime) -> None:
        while self.clock.now() < end:
            self.step()
