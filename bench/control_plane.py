"""Control-plane benchmark: AWS API calls (and moto wall time) for one dispatcher tick with every
target due, and for watchdog ticks over a large healthy fleet with a few overdue targets.

    python -m bench.control_plane                      # 10,000 targets on 100 agents, 10 overdue
    python -m bench.control_plane --targets 1000 --agents 10

Runs in-process against moto (``mock_aws``); calls are counted with a botocore ``before-call`` hook
on every client, so the counts are exactly what the code would send to AWS. Wall times are moto's
(a Python emulator on this machine), not AWS latencies: read them as relative figures only.
Results are printed and written to bench/results/control_plane.json. docs/control-plane-costs.md
turns the counts into a monthly cost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from backup_contracts import ledger as keys
from backup_contracts.events import AgentHeartbeat, BackupStarted, BackupSucceeded
from backup_contracts.fleet import Fleet, parse_fleet
from backup_contracts.naming import backup_object_key
from backup_functions.audit.logic import AuditConfig, Auditor
from backup_functions.dispatcher import logic as dispatcher
from backup_functions.ledger import Ledger, serialize
from backup_functions.ports import S3ObjectStore, SnsNotifier, SqsJobQueue
from backup_functions.watchdog.handler import run_tick
from local_pipeline.clock import SimulatedClock
from local_pipeline.resources import LocalResources, provision

NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
RPO = timedelta(hours=26)
RESULTS = Path(__file__).resolve().parent / "results" / "control_plane.json"


class CallCounter:
    """Counts API calls per "service.Operation" on the clients it is attached to."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, *clients: Any) -> CallCounter:
        for client in clients:
            client.meta.events.register("before-call", self._count)
        return self

    def _count(self, event_name: str, **_kwargs: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self.calls[f"{service}.{operation}"] += 1

    def service(self, name: str) -> int:
        return sum(n for op, n in self.calls.items() if op.split(".", 1)[0] == name)

    def reset(self) -> None:
        self.calls.clear()


@dataclass
class Measurement:
    name: str
    targets: int
    seconds: float
    calls: dict[str, int] = field(default_factory=dict)

    def service(self, name: str) -> int:
        return sum(n for op, n in self.calls.items() if op.split(".", 1)[0] == name)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def generate_fleet(targets: int, agents: int, *, name: str = "bench") -> Fleet:
    """A fleet of ``targets`` daily-backed-up targets spread evenly over ``agents`` agents."""
    per_agent, extra = divmod(targets, agents)
    agent_list = []
    made = 0
    for a in range(agents):
        count = per_agent + (1 if a < extra else 0)
        agent_list.append(
            {
                "name": f"host-{a:03d}",
                "targets": [
                    {"name": f"db-{a:03d}-{t:04d}", "engine": "postgresql", "schedule": "rate(1 day)", "rpo": "26h"}
                    for t in range(count)
                ],
            }
        )
        made += count
    assert made == targets
    return parse_fleet(
        {
            "version": 1,
            "pipeline": {"name": name},
            "retention_classes": {"standard": {"daily_days": 14}},
            "agents": agent_list,
        }
    )


@contextmanager
def fake_aws() -> Iterator[boto3.Session]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.setdefault(name, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def _batch_write(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": serialize(item)}} for item in items[start : start + 25]]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def seed_ledger(client: Any, table: str, fleet: Fleet, *, now: datetime, overdue: int) -> None:
    """Target and agent state rows as the audit leaves them after a good day: every target backed up
    2 h ago (RPO watch 24 h ahead), except ``overdue`` targets whose last good backup is 27 h old;
    every agent heartbeating (watch 30 min ahead). Ended job and run rows carry no watch attributes,
    so they are not in the sparse index and do not change the watchdog's calls."""
    items: list[dict[str, Any]] = []
    for index, (agent, target) in enumerate(fleet.targets()):
        late = index < overdue
        good = now - (timedelta(hours=27) if late else timedelta(hours=2))
        items.append(
            {
                keys.PK: keys.target_pk(target.name),
                keys.SK: keys.STATE_SK,
                "target": target.name,
                "agent": agent.name,
                "engine": target.engine,
                "rpo_s": int(RPO.total_seconds()),
                "last_good_at": good,
                "last_good_run_id": f"run-{index}",
                "last_good_bytes": 1_000_000,
                "last_dispatched_slot": keys.iso(good - timedelta(minutes=5)),
                "last_run_state": "succeeded",
                keys.WATCH_SHARD: keys.watch_shard(target.name),
                keys.WATCH_KIND: "rpo",
                keys.WATCH_DEADLINE: keys.iso(good + RPO),
            }
        )
    for agent in fleet.agents:
        items.append(
            {
                keys.PK: keys.agent_pk(agent.name),
                keys.SK: keys.STATE_SK,
                "agent": agent.name,
                "last_heartbeat_at": now - timedelta(minutes=2),
                keys.WATCH_SHARD: keys.watch_shard(agent.name),
                keys.WATCH_KIND: "heartbeat",
                keys.WATCH_DEADLINE: keys.iso(now + timedelta(minutes=28)),
            }
        )
    _batch_write(client, table, items)


def measure_dispatcher(fleet: Fleet, session: boto3.Session, resources: LocalResources) -> list[Measurement]:
    """One dispatcher tick on a fresh ledger (every target due: first sight), then the next tick
    five minutes later with nothing due (what 287 of a daily fleet's 288 ticks a day look like)."""
    dynamodb, sqs = session.client("dynamodb"), session.client("sqs")
    counter = CallCounter().attach(dynamodb, sqs)
    cfg = dispatcher.DispatchConfig.from_fleet(
        fleet, bucket=resources.bucket, queue_url_prefix=resources.job_queue_url_prefix
    )
    ledger = Ledger(resources.ledger_table, dynamodb)
    measurements = []
    for name, now, expected in (
        ("dispatcher tick, all due", NOW, len(fleet.targets())),
        ("dispatcher tick, none due", NOW + timedelta(minutes=5), 0),
    ):
        counter.reset()
        started = time.perf_counter()
        result = dispatcher.tick(fleet, ledger, SqsJobQueue(sqs), cfg, now)
        seconds = time.perf_counter() - started
        if result.sent != expected:
            raise RuntimeError(f"{name}: dispatcher sent {result.sent} jobs, expected {expected}")
        measurements.append(Measurement(name, len(fleet.targets()), seconds, dict(counter.calls)))
    return measurements


def measure_audit(fleet: Fleet, session: boto3.Session, resources: LocalResources) -> list[Measurement]:
    """The audit function's calls for one good backup (Started + Succeeded, object verified and
    tagged) and for one agent heartbeat."""
    dynamodb, s3, sns = session.client("dynamodb"), session.client("s3"), session.client("sns")
    started_at = datetime.now(UTC)  # moto dates the object with the real time: the run happens now
    clock = SimulatedClock(started_at)
    auditor = Auditor(
        fleet,
        Ledger(resources.ledger_table, dynamodb),
        objects=S3ObjectStore(s3),
        notifier=SnsNotifier(sns, resources.alert_topic_arn),
        config=AuditConfig.from_fleet(fleet, bucket=resources.bucket, kms_key_arn=resources.kms_key_arn),
        clock=clock,
    )
    agent, target = fleet.targets()[-1]
    body = b"a small backup"
    sha = hashlib.sha256(body).hexdigest()
    key = backup_object_key(agent.name, target.name, "run-bench", started_at, "dump.zst")
    put = s3.put_object(
        Bucket=resources.bucket,
        Key=key,
        Body=body,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=resources.kms_key_arn,
        Metadata={"sha256": sha, "run-id": "run-bench"},
    )
    common: dict[str, Any] = {
        "job_id": keys.scheduled_job_id(target.name, started_at),
        "run_id": "run-bench",
        "target": target.name,
        "agent": agent.name,
        "started_at": started_at,
        "bucket": resources.bucket,
        "key": key,
    }
    succeeded = BackupSucceeded(
        **common,
        finished_at=started_at + timedelta(seconds=1),
        version_id=put.get("VersionId"),
        bytes_in=len(body),
        bytes_stored=len(body),
        sha256=sha,
        engine=target.engine,
        format="custom",
        compression="zstd",
        duration_s=60.0,
    )
    heartbeat = AgentHeartbeat(agent=agent.name, version="bench", targets=[target.name], sent_at=started_at)
    counter = CallCounter().attach(dynamodb, s3, sns)
    measurements = []
    for name, events in (
        ("audit, one good backup", [BackupStarted(**common), succeeded]),
        ("audit, one heartbeat", [heartbeat]),
    ):
        counter.reset()
        started = time.perf_counter()
        for event in events:
            outcome = auditor.handle(event, sender=agent.name)
            if outcome.problems:
                raise RuntimeError(f"{name}: audit found problems: {outcome.problems}")
        measurements.append(Measurement(name, 1, time.perf_counter() - started, dict(counter.calls)))
    return measurements


def measure_watchdog(
    fleet: Fleet, session: boto3.Session, resources: LocalResources, *, overdue: int
) -> list[Measurement]:
    """Watchdog ticks over a seeded ledger: the tick that opens ``overdue`` incidents, then a quiet one."""
    dynamodb, sns = session.client("dynamodb"), session.client("sns")
    seed_ledger(dynamodb, resources.ledger_table, fleet, now=NOW, overdue=overdue)
    # a running pipeline: the dispatcher completed its last tick a minute ago
    Ledger(resources.ledger_table, dynamodb).jobs.advance_marker(NOW - timedelta(minutes=1), "fleet")
    counter = CallCounter().attach(dynamodb, sns)
    measurements = []
    for name, now in (
        (f"watchdog tick, {overdue} overdue (alerts)", NOW),
        (f"watchdog tick, {overdue} still open (quiet)", NOW + timedelta(minutes=5)),
    ):
        counter.reset()
        started = time.perf_counter()
        report = run_tick(
            now,
            fleet=fleet,
            ledger=Ledger(resources.ledger_table, dynamodb),
            notifier=SnsNotifier(sns, resources.alert_topic_arn),
        )
        seconds = time.perf_counter() - started
        if report.overdue_targets != overdue:
            raise RuntimeError(f"watchdog saw {report.overdue_targets} overdue targets, expected {overdue}")
        measurements.append(Measurement(name, len(fleet.targets()), seconds, dict(counter.calls)))
    return measurements


def run(targets: int, agents: int, overdue: int) -> list[Measurement]:
    fleet = generate_fleet(targets, agents)
    results = []
    with fake_aws() as session:
        results.extend(measure_dispatcher(fleet, session, provision(fleet, session)))
    with fake_aws() as session:
        resources = provision(fleet, session)
        results.extend(measure_watchdog(fleet, session, resources, overdue=overdue))
        results.extend(measure_audit(fleet, session, resources))
    return results


# --------------------------------------------------------------------------- monthly cost

# us-east-1 LIST prices (USD) assumed — check https://aws.amazon.com/pricing before relying on them.
PRICES = {
    "lambda_request": 0.20 / 1e6,  # per invocation
    "lambda_gb_s": 0.0000166667,  # x86, per GB-second
    "ddb_write": 0.625 / 1e6,  # on-demand, per write request unit
    "ddb_read": 0.125 / 1e6,  # on-demand, per read request unit
    "sqs_request": 0.40 / 1e6,  # standard queue, per request (64 KiB chunk)
    "events_custom": 1.00 / 1e6,  # EventBridge custom events put on a bus, per event
    "sns_publish": 0.50 / 1e6,  # per publish (64 KiB chunk); e-mail deliveries 2.00 per 100,000
    "s3_put": 0.005 / 1000,  # PUT, COPY, POST, LIST (S3 Standard)
    "s3_get": 0.0004 / 1000,  # GET, HEAD and other reads
    "kms_key_month": 1.00,  # one customer-managed key
}


@dataclass(frozen=True)
class Workload:
    """1,000 databases backed up daily, as the cost section of docs/control-plane-costs.md assumes."""

    targets: int = 1000
    agents: int = 50
    days: int = 30
    tick_minutes: int = 5  # dispatcher and watchdog schedules
    heartbeat_minutes: int = 5  # agent default (heartbeat_minutes)
    long_poll_s: int = 20  # agent ReceiveMessage wait
    lambda_gb: float = 0.5  # 512 MB functions
    dispatcher_quiet_s: float = 0.5  # assumed durations (AWS, not moto)
    dispatcher_due_s: float = 20.0
    watchdog_s: float = 0.3
    audit_event_s: float = 0.15
    event_queue_pollers: int = 5  # Lambda's SQS event source long-polls each queue with ~5 pollers
    event_queues: int = 3  # audit, restore and silence event queues (rule → SQS → Lambda)
    s3_put_per_backup: int = 3  # agent multipart upload: Create + 1 part + Complete (more parts for big dumps)
    ddb_read_units_per_call: float = 0.5  # eventually consistent, items < 4 KB
    gsi_write_factor: float = 2.0  # a write that moves a watch_deadline also rewrites the GSI entry


def _ops(m: Measurement, service: str, *ops: str) -> int:
    return sum(n for op, n in m.calls.items() if op.startswith(f"{service}.") and op.split(".", 1)[1] in ops)


DDB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
DDB_READS = ("GetItem", "Query", "BatchGetItem")


def monthly_cost(results: list[Measurement], w: Workload = Workload()) -> list[tuple[str, str, float]]:
    """(line item, how it is counted, USD per month) for the workload, from measured calls."""
    due = next(m for m in results if m.name == "dispatcher tick, all due")
    quiet = next(m for m in results if m.name == "dispatcher tick, none due")
    wd = next(m for m in results if m.name.startswith("watchdog tick") and "quiet" in m.name)
    backup = next(m for m in results if m.name == "audit, one good backup")
    beat = next(m for m in results if m.name == "audit, one heartbeat")
    per_target_due = {k: v / due.targets for k, v in due.calls.items()}
    # BatchGetItem reads up to 100 items per call and every requested key costs read units, found or not:
    # scale the measured keys per target (state row + latest-slot job row) to the workload.
    quiet_items_read = w.targets * 100 * quiet.calls.get("dynamodb.BatchGetItem", 0) / quiet.targets

    minutes = w.days * 24 * 60
    ticks = minutes // w.tick_minutes
    backups = w.targets * w.days
    heartbeats = w.agents * (minutes // w.heartbeat_minutes)
    audit_events = 2 * backups + heartbeats

    lines: list[tuple[str, str, float]] = []

    def add(item: str, how: str, usd: float) -> None:
        lines.append((item, how, usd))

    invocations = 2 * ticks + audit_events
    add(
        "Lambda requests",
        f"{2 * ticks:,} scheduled + {audit_events:,} audit events",
        invocations * PRICES["lambda_request"],
    )
    gb_s = w.lambda_gb * (
        (ticks - w.days) * w.dispatcher_quiet_s
        + w.days * w.dispatcher_due_s
        + ticks * w.watchdog_s
        + audit_events * w.audit_event_s
    )
    add("Lambda compute", f"{gb_s:,.0f} GB-s at {w.lambda_gb} GB", gb_s * PRICES["lambda_gb_s"])

    dispatch_writes = backups * sum(v for k, v in per_target_due.items() if k.split(".")[1] in DDB_WRITES)
    audit_writes = backups * _ops(backup, "dynamodb", *DDB_WRITES)
    beat_writes = heartbeats * _ops(beat, "dynamodb", *DDB_WRITES)
    wru = (dispatch_writes + audit_writes + beat_writes) * w.gsi_write_factor
    add(
        "DynamoDB writes",
        f"({dispatch_writes:,.0f} dispatch + {audit_writes:,} audit + {beat_writes:,} heartbeat)"
        f" x {w.gsi_write_factor} GSI",
        wru * PRICES["ddb_write"],
    )
    dispatch_reads = (ticks - w.days) * quiet_items_read * w.ddb_read_units_per_call
    watchdog_reads = ticks * _ops(wd, "dynamodb", *DDB_READS) * w.ddb_read_units_per_call
    audit_reads = (backups * _ops(backup, "dynamodb", *DDB_READS) + heartbeats * _ops(beat, "dynamodb", *DDB_READS)) * (
        w.ddb_read_units_per_call * 2  # the audit reads strongly consistent
    )
    rru = dispatch_reads + watchdog_reads + audit_reads
    per_100 = quiet_items_read / w.targets
    add(
        "DynamoDB reads",
        f"dispatcher {dispatch_reads:,.0f} ({per_100:g} keys per target per tick, BatchGetItem) +"
        f" watchdog {watchdog_reads:,.0f} + audit {audit_reads:,.0f} RRU",
        rru * PRICES["ddb_read"],
    )
    agent_polls = w.agents * minutes * 60 // w.long_poll_s
    lambda_polls = w.event_queues * w.event_queue_pollers * minutes * 60 // 20
    job_sqs = backups * (per_target_due.get("sqs.SendMessageBatch", 0) + 2)  # + agent Delete, ChangeVisibility
    sqs_requests = agent_polls + lambda_polls + job_sqs + 2 * audit_events  # event queue send (rule) + delete
    add(
        "SQS requests",
        f"{agent_polls:,} agent long polls + {lambda_polls:,} Lambda pollers + {job_sqs:,.0f} job + "
        f"{2 * audit_events:,} event-queue",
        sqs_requests * PRICES["sqs_request"],
    )
    add("EventBridge custom events", f"{audit_events:,} agent events", audit_events * PRICES["events_custom"])
    add("SNS", "alerts only when something is wrong: ~0 in a healthy month", 0.0)
    s3_put = backups * (w.s3_put_per_backup + _ops(backup, "s3", "PutObjectTagging"))
    s3_get = backups * _ops(backup, "s3", "HeadObject", "GetObjectTagging", "GetObject")
    add(
        "S3 requests (no storage)",
        f"{s3_put:,} PUT-class + {s3_get:,} GET-class",
        s3_put * PRICES["s3_put"] + s3_get * PRICES["s3_get"],
    )
    add("KMS", "1 customer-managed key (requests mostly cached by bucket/table keys)", PRICES["kms_key_month"])
    return lines


def render_cost(lines: list[tuple[str, str, float]]) -> str:
    out = ["| line item | counted as | USD / month |", "|---|---|---:|"]
    out += [f"| {item} | {how} | {usd:,.2f} |" for item, how, usd in lines]
    out.append(f"| **total** | | **{sum(usd for _, _, usd in lines):,.2f}** |")
    return "\n".join(out) + "\n"


def render(results: list[Measurement]) -> str:
    lines = [
        "| tick | targets | DynamoDB calls | SQS calls | SNS calls | total calls | calls / target | moto wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        lines.append(
            f"| {m.name} | {m.targets:,} | {m.service('dynamodb'):,} | {m.service('sqs'):,} | {m.service('sns'):,}"
            f" | {m.total:,} | {m.total / m.targets:.4f} | {m.seconds:.1f} s |"
        )
    lines.append("")
    for m in results:
        detail = ", ".join(f"{op} {n:,}" for op, n in sorted(m.calls.items()))
        lines.append(f"- {m.name}: {detail}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--overdue", type=int, default=10)
    parser.add_argument("--from-results", action="store_true", help=f"re-render {RESULTS.name} instead of measuring")
    args = parser.parse_args(argv)
    if args.from_results:
        results = [Measurement(**m) for m in json.loads(RESULTS.read_text(encoding="utf-8"))]
    else:
        results = run(args.targets, args.agents, args.overdue)
    print(render(results))
    print(f"Monthly cost of {Workload().targets:,} daily-backed-up databases (us-east-1 list prices, see PRICES):\n")
    print(render_cost(monthly_cost(results)))
    if args.from_results:
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([m.__dict__ for m in results], indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if not args.from_results:
        print(f"written: {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
