"""The handler scenarios of the fault harness: each a setup (made without faults) and an act — the
invocations AWS makes, with their recovery: SQS redelivery of a failed record, a retried call of the
approvals URL, the next scheduled tick (made later on the clock, as it runs later in AWS)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.fleet import parse_fleet
from backup_contracts.naming import agent_event_source, backup_object_key, manifest_key, wal_object_key
from backup_functions.ledger import NewJob
from local_pipeline.replication import replicator
from tests.faults.harness import redeliver, retry, tick
from tests.faults.worlds import CONTEXT, FaultWorld, later
from tests.restore.conftest import ALICE, BOB, T0
from tests.simulated_objects import date_object

Step = Callable[[FaultWorld], None]
NEXT_TICK = 16  # minutes: a later tick of the schedule, after any in-flight invocation ended


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Step
    act: Step
    settle: Step  # what the pipeline does next, without faults: the next tick of a schedule
    drills: bool = False  # the fleet has the restore fleet's drill (of target app)
    offsite: bool = False  # the fleet has an off-site vault (worlds.OFFSITE), which the watchdog checks
    pitr: bool = False  # db-host also runs a PITR target (worlds.PITR_TARGET), which archives WAL


def _nothing(w: FaultWorld) -> None:
    return None


def _restore(w: FaultWorld, body: str) -> None:
    from backup_functions.restore import handler

    redeliver(handler.handler, w.record(body), CONTEXT)


def _next(step: Callable[[FaultWorld], Any], minutes: int = NEXT_TICK) -> Step:
    def settle(w: FaultWorld) -> None:
        later(w, minutes)
        tick(lambda: step(w))

    return settle


# After an event: the next tick, later than any redelivery and the outbox's grace.
RESTORE_TICK = _next(lambda w: w.restore_tick())
WATCHDOG_TICK = _next(lambda w: w.watchdog_tick())
# After a tick: the tick again at the same instant, so that work a failed tick left to it produces the
# same messages and items (a later tick would legitimately stamp them later).
RESTORE_AGAIN = _next(lambda w: w.restore_tick(), 0)
WATCHDOG_AGAIN = _next(lambda w: w.watchdog_tick(), 0)
DISPATCHER_AGAIN = _next(lambda w: w.dispatcher_tick(), 0)


def _request(w: FaultWorld, **detail: Any) -> str:
    fields = {"requested_by": "alice@example.com", "reason": "fault harness", **detail}
    return w.world.envelope("backup.requests", "Restore Requested", fields)


def _seed_app(w: FaultWorld) -> None:
    w.world.seed_backup("app", started=T0 - timedelta(hours=3), run_id="20261122T090000Z-app0001")


def _seed_orders(w: FaultWorld) -> None:
    w.world.seed_backup("orders", started=T0 - timedelta(hours=3), run_id="20261122T090000Z-ord0001")


def _dispatch_app(w: FaultWorld) -> None:
    _seed_app(w)
    w.world.coordinator.handle(_request(w, restore_id="r-1", target="app", destination="app-clone"))


def _report(w: FaultWorld, restore_id: str, kind: str, **extra: Any) -> str:
    detail = w.world.report(restore_id, **extra)
    return w.world.envelope(agent_event_source(str(detail["agent"])), kind, json.loads(json.dumps(detail, default=str)))


def _succeeded(w: FaultWorld, restore_id: str) -> str:
    end = keys.iso(w.clock.now() + timedelta(minutes=2))
    return _report(w, restore_id, "Restore Succeeded", finished_at=end, duration_s=120.0, verification={"ok": True})


def _failed(w: FaultWorld, restore_id: str) -> str:
    end = keys.iso(w.clock.now() + timedelta(minutes=2))
    return _report(
        w,
        restore_id,
        "Restore Failed",
        finished_at=end,
        stage="restore",
        error="sqlite3 exited 1",
        destination_touched=True,
    )


def _drill(w: FaultWorld) -> None:
    _seed_app(w)
    w.world.coordinator.tick()


def _drill_id(w: FaultWorld) -> str:
    state = w.world.ledger.targets.get("app")
    assert state is not None
    assert state.last_drill_restore_id
    return state.last_drill_restore_id


def _awaiting(w: FaultWorld) -> None:
    _seed_orders(w)
    w.world.submit(ALICE, restore_id="r-prot", target="orders", mode="in-place")


# ---------------------------------------------------------------------------------------------- audit
AUDIT_AGENT, AUDIT_TARGET = "db-host", "shop"
BODY = b"-- MariaDB dump\n" + b"x" * 4096


def _backup_events(w: FaultWorld, run: str, started_at: Any, *, failed: bool = False) -> tuple[str, str]:
    key = backup_object_key(AUDIT_AGENT, AUDIT_TARGET, run, started_at, "sql.zst")
    base = {
        "job_id": f"{AUDIT_TARGET}.{run}",
        "run_id": run,
        "target": AUDIT_TARGET,
        "agent": AUDIT_AGENT,
        "started_at": keys.iso(started_at),
        "bucket": w.world.resources.bucket,
        "key": key,
    }
    finished = started_at + timedelta(minutes=3)
    if failed:
        end = {**base, "finished_at": keys.iso(finished), "stage": "dump", "exit_code": 2, "error": "mariadb-dump: 2"}
        kind = "Backup Failed"
    else:
        end = {
            **base,
            "finished_at": keys.iso(finished),
            "bytes_in": 9000,
            "bytes_stored": len(BODY),
            "sha256": hashlib.sha256(BODY).hexdigest(),
            "engine": "mariadb",
            "format": "sql",
            "compression": "zstd",
            "duration_s": 180.0,
        }
        kind = "Backup Succeeded"
    source = agent_event_source(AUDIT_AGENT)
    return w.world.envelope(source, "Backup Started", base), w.world.envelope(source, kind, end)


def _store(w: FaultWorld, run: str, started_at: Any) -> None:
    key = backup_object_key(AUDIT_AGENT, AUDIT_TARGET, run, started_at, "sql.zst")
    r = w.world.resources
    w.world.s3.put_object(
        Bucket=r.bucket,
        Key=key,
        Body=BODY,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=r.kms_key_arn,
        Metadata={"sha256": hashlib.sha256(BODY).hexdigest(), "run-id": run},
    )
    date_object(r.bucket, key, started_at + timedelta(minutes=3))


RUN_1, RUN_2 = "20261122T113000Z-shop001", "20261122T114500Z-shop002"
START_1, START_2 = T0 - timedelta(minutes=30), T0 - timedelta(minutes=15)


def _audit_then_watchdog(w: FaultWorld, *bodies: str) -> None:
    from backup_functions.audit import handler

    for body in bodies:
        redeliver(handler.handler, w.record(body), CONTEXT)


def _audit_started(w: FaultWorld) -> None:
    _audit_then_watchdog(w, _backup_events(w, RUN_1, START_1)[0])


def _audit_succeeded_setup(w: FaultWorld) -> None:
    _store(w, RUN_1, START_1)
    w.audit(_backup_events(w, RUN_1, START_1)[0])


def _audit_succeeded(w: FaultWorld) -> None:
    _audit_then_watchdog(w, _backup_events(w, RUN_1, START_1)[1])


def _audit_failed(w: FaultWorld) -> None:
    _audit_then_watchdog(w, _backup_events(w, RUN_1, START_1, failed=True)[1])


def _audit_resolved_setup(w: FaultWorld) -> None:
    w.audit(_backup_events(w, RUN_1, START_1, failed=True)[1])
    _store(w, RUN_2, START_2)
    w.audit(_backup_events(w, RUN_2, START_2)[0])


def _audit_resolved(w: FaultWorld) -> None:
    _audit_then_watchdog(w, _backup_events(w, RUN_2, START_2)[1])


# ---------------------------------------------------------------------------------------------- WAL archive
def _wal_event(w: FaultWorld, number: int, at: Any) -> str:
    """A WAL file of the PITR target stored as ``wal-push`` stores it, and its ``WAL Archived``."""
    name = f"{1:08X}{0:08X}{number:08X}"
    key, body, r = wal_object_key("db-host", "orders-pitr", name), f"wal {name}".encode() * 4, w.world.resources
    sha = hashlib.sha256(body).hexdigest()
    w.world.s3.put_object(
        Bucket=r.bucket,
        Key=key,
        Body=body,
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=r.kms_key_arn,
        Metadata={"sha256": sha, "wal-file": name},
    )
    detail = {"agent": "db-host", "target": "orders-pitr", "file": name, "bucket": r.bucket, "key": key}
    detail |= {"sha256": sha, "bytes_in": 16 << 20, "bytes_stored": len(body), "compression": "zst"}
    return w.world.envelope(agent_event_source("db-host"), "WAL Archived", {**detail, "archived_at": keys.iso(at)})


def _wal_archived_setup(w: FaultWorld) -> None:
    w.audit(_wal_event(w, 1, T0 - timedelta(minutes=2)))


def _wal_archived(w: FaultWorld) -> None:
    _audit_then_watchdog(w, _wal_event(w, 2, T0 - timedelta(minutes=1)))


def _wal_gap_setup(w: FaultWorld) -> None:
    for number in (1, 2, 4):  # segment 3 never arrives
        w.audit(_wal_event(w, number, T0 - timedelta(minutes=20)))


# ---------------------------------------------------------------------------------------------- watchdog
def _watchdog(w: FaultWorld) -> None:
    tick(w.watchdog_tick)


def _offsite_backup(w: FaultWorld) -> None:
    """A verified backup (object and manifest) whose off-site copy the audit expects; checked once, before
    replication copied it (so the copy's problem is recorded)."""
    _store(w, RUN_1, START_1)
    key = backup_object_key(AUDIT_AGENT, AUDIT_TARGET, RUN_1, START_1, "sql.zst")
    manifest = {"run_id": RUN_1, "sha256": hashlib.sha256(BODY).hexdigest(), "bytes_stored": len(BODY)}
    w.world.s3.put_object(Bucket=w.world.resources.bucket, Key=manifest_key(key), Body=json.dumps(manifest))
    for body in _backup_events(w, RUN_1, START_1):
        w.audit(body)
    w.watchdog_tick()


def _offsite_replicated_setup(w: FaultWorld) -> None:
    _offsite_backup(w)
    vault = w.world.resources.vault
    assert vault is not None
    replicator(w.world.session, w.world.resources.bucket, vault).replicate()
    later(w, 6)  # the copy's next check is due


def _offsite_late_setup(w: FaultWorld) -> None:
    _offsite_backup(w)
    later(w, 61)  # past the lag: the copy never came


def _good_backup(w: FaultWorld, target: str, at: Any) -> None:
    w.world.ledger.targets.record_good_backup(
        target,
        "db-host",
        run_id=f"run-{target}-{at:%H%M}",
        finished_at=at,
        rpo=timedelta(hours=26),
        bucket="b",
        key=f"agents/db-host/{target}/x.zst",
        version_id=None,
        bytes_stored=1234,
        sha256="0" * 64,
        engine="mariadb",
    )


def _missing_setup(w: FaultWorld) -> None:
    _good_backup(w, "shop", T0 - timedelta(hours=27))


def _overdue_setup(w: FaultWorld) -> None:
    issued = T0 - timedelta(hours=1)
    job = NewJob(
        job_id=keys.scheduled_job_id("shop", issued),
        target="shop",
        agent="db-host",
        engine="mariadb",
        trigger="schedule",
        slot=issued,
        issued_at=issued,
        deadline=issued + timedelta(hours=2),
        start_deadline=issued + timedelta(minutes=30),
        rpo=timedelta(hours=26),
        expires_at=issued + timedelta(days=30),
        message="{}",
        attributes={"kind": "backup"},
    )
    assert w.world.ledger.jobs.create(job)


def _heartbeat_setup(w: FaultWorld) -> None:
    w.world.ledger.agents.record_heartbeat(
        "db-host", version="1", targets=[], sent_at=T0 - timedelta(hours=1), timeout=timedelta(minutes=30)
    )


def _resolved_setup(w: FaultWorld) -> None:
    _missing_setup(w)
    w.watchdog_tick()
    _good_backup(w, "shop", T0 + timedelta(minutes=1))
    later(w, 5)


def _agent_down_setup(w: FaultWorld) -> None:
    _heartbeat_setup(w)  # silent for 30 min
    _missing_setup(w)  # and its target's RPO passed: held by the agent's incident


def _decommissioned_setup(w: FaultWorld) -> None:
    import dataclasses

    from backup_functions.watchdog import handler

    _agent_down_setup(w)
    w.watchdog_tick()
    spec = w.world.fleet.model_dump(mode="json", exclude_none=True)
    spec["agents"] = [a for a in spec["agents"] if a["name"] != "db-host"]
    handler.configure(dataclasses.replace(handler.runtime.get(), fleet=parse_fleet(spec)))
    later(w, 5)


# ---------------------------------------------------------------------------------------------- dispatcher
def _dispatcher_due(w: FaultWorld) -> None:
    tick(w.dispatcher_tick)


def _backup_requested(w: FaultWorld) -> None:
    from backup_functions.dispatcher import handler

    event = json.loads(
        w.world.envelope(
            "backup.requests",
            "Backup Requested",
            {"target": "shop", "requested_by": "ops", "reason": "harness", "request_id": "req-1"},
        )
    )
    retry(lambda: handler.handler(event, CONTEXT), attempts=3)  # a direct target: Lambda retries it twice


def _tick(w: FaultWorld) -> None:
    tick(w.restore_tick)


def _expire(w: FaultWorld) -> None:
    later(w, 31)
    tick(w.restore_tick)


def _time_out(w: FaultWorld) -> None:
    later(w, 76)
    tick(w.restore_tick)


def _submit(w: FaultWorld) -> None:
    retry(lambda: w.world.submit(ALICE, restore_id="r-prot", target="orders", mode="in-place"))


def _approve(w: FaultWorld) -> None:
    retry(lambda: w.world.approve("r-prot", BOB))


def _req(**detail: Any) -> Step:
    return lambda w: _restore(w, _request(w, **detail))


CLONE = {"restore_id": "r-1", "target": "app", "destination": "app-clone"}
SCENARIOS = [
    # restore coordinator
    Scenario("restore-dispatched", _seed_app, _req(**CLONE), RESTORE_TICK),
    Scenario("restore-dry-run", _seed_app, _req(**{**CLONE, "restore_id": "r-dry", "dry_run": True}), RESTORE_TICK),
    Scenario(
        "restore-rejected", _seed_app, _req(**{**CLONE, "restore_id": "r-bad", "destination": "nowhere"}), RESTORE_TICK
    ),
    Scenario("approval-requested", _seed_orders, _submit, RESTORE_TICK),
    Scenario("approval-dispatched", _awaiting, _approve, RESTORE_TICK),
    Scenario("approval-expired", _awaiting, _expire, RESTORE_AGAIN),
    Scenario("restore-succeeded", _dispatch_app, lambda w: _restore(w, _succeeded(w, "r-1")), RESTORE_TICK),
    Scenario("restore-failed", _dispatch_app, lambda w: _restore(w, _failed(w, "r-1")), RESTORE_TICK),
    Scenario("restore-timed-out", _dispatch_app, _time_out, RESTORE_AGAIN),
    Scenario("drill-dispatched", _seed_app, _tick, RESTORE_AGAIN, drills=True),
    Scenario("drill-succeeded", _drill, lambda w: _restore(w, _succeeded(w, _drill_id(w))), RESTORE_TICK, drills=True),
    Scenario("drill-failed", _drill, lambda w: _restore(w, _failed(w, _drill_id(w))), RESTORE_TICK, drills=True),
    Scenario("drill-no-backup", _nothing, _tick, RESTORE_AGAIN, drills=True),
    # audit
    Scenario("audit-started", _nothing, _audit_started, WATCHDOG_TICK),
    Scenario("audit-succeeded", _audit_succeeded_setup, _audit_succeeded, WATCHDOG_TICK),
    Scenario("audit-failed", _nothing, _audit_failed, WATCHDOG_TICK),
    Scenario("audit-resolved", _audit_resolved_setup, _audit_resolved, WATCHDOG_TICK),
    Scenario("audit-wal-archived", _wal_archived_setup, _wal_archived, WATCHDOG_TICK, pitr=True),
    # watchdog
    Scenario("watchdog-wal-gap", _wal_gap_setup, _watchdog, WATCHDOG_AGAIN, pitr=True),
    Scenario("watchdog-missing", _missing_setup, _watchdog, WATCHDOG_AGAIN),
    Scenario("watchdog-not-started", _overdue_setup, _watchdog, WATCHDOG_AGAIN),
    Scenario("watchdog-heartbeat", _heartbeat_setup, _watchdog, WATCHDOG_AGAIN),
    Scenario("watchdog-resolved", _resolved_setup, _watchdog, WATCHDOG_AGAIN),
    Scenario("watchdog-agent-down", _agent_down_setup, _watchdog, WATCHDOG_AGAIN),
    Scenario("watchdog-decommissioned", _decommissioned_setup, _watchdog, WATCHDOG_AGAIN),
    Scenario("offsite-verified", _offsite_replicated_setup, _watchdog, WATCHDOG_AGAIN, offsite=True),
    Scenario("offsite-late", _offsite_late_setup, _watchdog, WATCHDOG_AGAIN, offsite=True),
    # dispatcher
    Scenario("dispatcher-due", _nothing, _dispatcher_due, DISPATCHER_AGAIN),
    Scenario("backup-requested", _nothing, _backup_requested, DISPATCHER_AGAIN),
]
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
