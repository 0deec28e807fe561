"""Ten simulated days of a small fleet, written into a moto ledger by the real code paths: the dispatcher's
tick creates the job rows and sends the jobs; a fake agent answers each job through the real audit
(S3 object with SSE-KMS and a matching checksum, Started and Succeeded/Failed events); drills go through
the ledger's restore and target-state writes. Used by the report's integration and browser tests.

The story the report must tell (T0 = the period's start, at midnight UTC):

- ``orders`` (host-a): a good backup every day; a weekly drill that succeeds;
- ``shop`` (host-a): its dumps fail on days 3 to 6 (an error text with markup in it), good otherwise;
- ``inventory`` (host-b): host-b is down on days 4 to 7, its jobs are never started (missing);
- ``analytics`` (host-a): added to the fleet on day 5.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import yaml
from simulated_objects import date_object

from backup_contracts.events import BackupFailed, BackupStarted, BackupSucceeded
from backup_contracts.fleet import Fleet, parse_fleet
from backup_contracts.jobs import Job
from backup_contracts.naming import backup_object_key
from backup_contracts.schedule import Schedule
from backup_functions.audit.logic import AuditConfig, Auditor
from backup_functions.dispatcher import logic as dispatcher
from backup_functions.ledger import Ledger
from backup_functions.ledger.outbox import Owed
from backup_functions.ports import S3ObjectStore, SnsNotifier, SqsJobQueue
from local_pipeline.clock import SimulatedClock
from local_pipeline.resources import LocalResources, provision

DAY = timedelta(days=1)
STEP = timedelta(hours=1)
DAYS = 10
HOSTILE_ERROR = 'pg_dump: error: <script>alert("x")</script><img src="http://example.invalid/x.png">'


def _target(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "26h", **extra}


def fleet_raw(*, with_analytics: bool = True) -> dict[str, Any]:
    host_a = [
        _target("orders", drill={"schedule": "rate(7 days)", "destination": "orders-drill"}),
        _target("shop"),
        {"name": "orders-drill", "engine": "sqlite", "schedule": "rate(7 days)", "rpo": "8d"},
    ]
    if with_analytics:
        host_a.append(_target("analytics"))
    return {
        "version": 1,
        "pipeline": {"name": "evidence", "heartbeat_timeout_minutes": 240},
        "retention_classes": {"standard": {"daily_days": 7}},
        "agents": [{"name": "host-a", "targets": host_a}, {"name": "host-b", "targets": [_target("inventory")]}],
    }


def period_start() -> datetime:
    """Midnight UTC 12 days ago: the simulation starts 2 days before the period and ends before now."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=DAYS + 2)


@dataclass
class ReportWorld:
    fleet: Fleet  # the final fleet (with analytics)
    early_fleet: Fleet  # the fleet before analytics was added
    resources: LocalResources
    session: boto3.Session
    clock: SimulatedClock
    t0: datetime
    runs: int = 0
    fleet_file: Path | None = None
    drills: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sqs = self.session.client("sqs")
        self.s3 = self.session.client("s3")
        self.ledger = Ledger(self.resources.ledger_table, self.session.client("dynamodb"))

    @classmethod
    def create(cls, directory: Path) -> ReportWorld:
        fleet, early = parse_fleet(fleet_raw()), parse_fleet(fleet_raw(with_analytics=False))
        session = boto3.Session(region_name="us-east-1")
        t0 = period_start()
        world = cls(fleet, early, provision(fleet, session), session, SimulatedClock(t0 - 2 * DAY), t0)
        world.fleet_file = directory / "fleet.yaml"
        world.fleet_file.write_text(yaml.safe_dump(fleet_raw()), encoding="utf-8")
        return world

    def day(self, moment: datetime) -> int:
        return (moment - self.t0) // DAY

    def _fleet_now(self) -> Fleet:
        return self.fleet if self.day(self.clock.now()) >= 5 else self.early_fleet

    def _auditor(self, fleet: Fleet) -> Auditor:
        return Auditor(
            fleet,
            self.ledger,
            objects=S3ObjectStore(self.s3),
            notifier=SnsNotifier(self.session.client("sns"), self.resources.alert_topic_arn),
            config=AuditConfig.from_fleet(fleet, bucket=self.resources.bucket, kms_key_arn=self.resources.kms_key_arn),
            clock=self.clock,
        )

    # ------------------------------------------------------------------ the parts

    def dispatcher_tick(self, fleet: Fleet) -> None:
        config = dispatcher.DispatchConfig.from_fleet(
            fleet, bucket=self.resources.bucket, queue_url_prefix=self.resources.job_queue_url_prefix
        )
        dispatcher.tick(fleet, self.ledger, SqsJobQueue(self.sqs), config, self.clock.now())

    def agent_work(self, agent: str, fleet: Fleet) -> None:
        """Take every job from the agent's queue; a job past its deadline is dropped, as if expired."""
        url = self.resources.agent_queue_urls[agent]
        while True:
            messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            for message in messages:
                job = Job.model_validate_json(message["Body"])
                if job.kind == "backup" and job.deadline > self.clock.now():
                    self._run_job(job, fleet)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _run_job(self, job: Job, fleet: Fleet) -> None:
        self.runs += 1
        started = self.clock.now()
        run_id = f"{started:%Y%m%dT%H%M%SZ}-r{self.runs}"
        day = self.day(started)
        body = f"backup of {job.target} on day {day} ".encode() * (40 + 5 * max(day, 0))  # grows by the day
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
        auditor = self._auditor(fleet)
        auditor.handle(BackupStarted(**common), sender=job.agent)
        finished = started + timedelta(seconds=40)
        self.clock.set(finished)
        if job.target == "shop" and 3 <= day <= 6:
            failed = BackupFailed(**common, finished_at=finished, stage="dump", exit_code=1, error=HOSTILE_ERROR)
            auditor.handle(failed, sender=job.agent)
            return
        put = self.s3.put_object(
            Bucket=job.bucket,
            Key=key,
            Body=body,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.resources.kms_key_arn,
            Metadata={"sha256": sha, "run-id": run_id},
        )
        date_object(job.bucket, key, finished)
        succeeded = BackupSucceeded(
            **common,
            finished_at=finished,
            version_id=put.get("VersionId"),
            bytes_in=len(body) * 3,
            bytes_stored=len(body),
            sha256=sha,
            engine="sqlite",
            format="sqlite",
            compression="zstd",
            duration_s=40.0,
        )
        auditor.handle(succeeded, sender=job.agent)

    def drill(self, target: str, slot: datetime, *, rto: timedelta) -> None:
        """A drill of ``target`` for ``slot`` through the ledger's restore and target-state writes."""
        restore_id = f"drill-{target}-{slot:%Y%m%dT%H%M%SZ}"
        restores = self.ledger.restores
        requested = slot + timedelta(minutes=5)
        owed = Owed(
            id=f"drill:{restore_id}", kind="drill", owed_at=requested, by="tick", payload={"restore_id": restore_id}
        )
        assert self.ledger.targets.claim_drill_slot(target, slot, restore_id, requested, owed=owed)
        summary = {"kind": "drill", "target": target, "destination": f"{target}-drill", "mode": "drill"}
        assert restores.create(restore_id, summary, at=requested, expires_at=requested + 30 * DAY)
        assert restores.transition(restore_id, "dispatched", at=requested + timedelta(seconds=1))
        assert restores.transition(restore_id, "running", at=requested + timedelta(minutes=1))
        finished = requested + rto
        assert restores.transition(restore_id, "succeeded", at=finished, attributes={"finished_at": finished})
        assert self.ledger.targets.settle_drill(target, owed)
        self.ledger.targets.record_drill(
            target, finished_at=finished, ok=True, rto_s=rto.total_seconds(), restore_id=restore_id, error=None
        )
        self.drills.append(restore_id)

    # ------------------------------------------------------------------ time

    def run(self) -> None:
        """From two days before the period to its end, one dispatcher tick an hour."""
        end = self.t0 + DAYS * DAY
        while self.clock.now() < end:
            start = self.clock.now()
            fleet = self._fleet_now()
            self.dispatcher_tick(fleet)
            for agent in fleet.agents:
                if agent.name == "host-b" and 4 <= self.day(start) <= 7:
                    continue  # down: neither takes jobs nor heartbeats
                self.agent_work(agent.name, fleet)
            self.clock.set(start + STEP)
        slots = Schedule("rate(7 days)").slots_after(self.t0 - timedelta(seconds=1))
        for slot in itertools.takewhile(lambda s: s < end - DAY, slots):
            self.drill("orders", slot, rto=timedelta(minutes=12))


@dataclass(frozen=True)
class EvidencePages:
    """The evidence report of the simulated ten days (``report_world``), as ``backupctl report`` wrote it."""

    world: ReportWorld
    html: Path
    json: Path
    stdout_json: str
    summary: str

    def doc(self) -> dict[str, Any]:
        return json.loads(self.json.read_text(encoding="utf-8"))
