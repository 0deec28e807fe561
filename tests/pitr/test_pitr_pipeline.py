"""Point-in-time recovery end to end on the local pipeline: a real PostgreSQL 15 cluster archives its WAL
through the real ``backup-agent wal-push``, a base backup is requested as an event and taken by a real
agent, the audit records both, and a ``Restore Requested`` for a second between two commits goes through
the coordinator (base backup and WAL chosen from the ledger, the WAL index written, presigned URLs) to a
real agent, which clones the cluster to exactly that second and reports it verified."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backup_contracts.events import BackupRequested, BackupSelector, RestoreRequested
from backup_contracts.fleet import load_fleet
from local_pipeline.moto_server import moto_server
from local_pipeline.resources import provision
from local_pipeline.runner import LocalPipeline
from tests.pitr.cluster import Cluster, free_port, new_cluster, owned_dir, server_user
from tests.pitr.wal_world import server_python

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

AGENT, SOURCE, CLONE, DRILL = "pitr-host", "orders-pitr", "orders-pitr-clone", "orders-pitr-drill"
DISPATCHER = "backup_functions.dispatcher.handler"
FLEET = f"""\
version: 1
pipeline: {{ name: backup-pipeline, heartbeat_timeout_minutes: 240, job_deadline_minutes: 120 }}
retention_classes:
  standard: {{ daily_days: 7 }}
agents:
  - name: {AGENT}
    targets:
      - name: {SOURCE}
        engine: postgresql-physical
        schedule: cron(0 2 * * *)
        rpo: 26h
        wal_rpo: 5m
        restore_to: [{CLONE}]
        drill: {{ schedule: rate(7 days), destination: {DRILL} }}
      - {{ name: {CLONE}, engine: postgresql-physical, schedule: cron(0 2 * * *), rpo: 26h }}
      - {{ name: {DRILL}, engine: postgresql-physical, schedule: cron(0 2 * * *), rpo: 26h }}
"""


@dataclass
class World:
    root: Path
    pipeline: LocalPipeline
    cluster: Cluster
    config: Path
    clone_data: Path
    clone_port: int

    def agent_round(self) -> Any:
        """Agent events → audit, the coordinator's queue → agent → bus → audit and coordinator."""
        self.pipeline.drain_restore_events()
        finished = self.pipeline.run_agent(self.config)
        self.pipeline.drain_audit()
        self.pipeline.drain_restore_events()
        return finished

    def ledger(self) -> Any:
        from backup_functions.ledger import Ledger  # loads once the pipeline set the functions' environment

        return Ledger(self.pipeline.resources.ledger_table, self.pipeline.session.client("dynamodb"))


def _destination(data: Path, cluster: Cluster, python: Path) -> dict[str, Any]:
    """A clone or drill destination: a new data directory on a free port, run by the server user."""
    return {
        "engine": "postgresql-physical",
        "data_directory": str(data),
        "port": free_port(),
        "server_user": server_user(),
        "bin_dir": str(cluster.bin_dir),
        "agent_python": str(python),  # the venv's own interpreter lives where postgres cannot go
    }


def _agent_config(world_root: Path, resources: Any, cluster: Cluster, clone_data: Path, clone_port: int) -> Path:
    state = world_root / "state"
    (state / "wal").mkdir(parents=True)
    for path in (state, state / "wal"):
        if cluster.user:
            shutil.chown(path, cluster.user)
    config = {
        "agent": AGENT,
        "region": resources.region,
        "queue_url": resources.agent_queue_urls[AGENT],
        "bus_name": resources.bus_name,
        "kms_key_id": resources.kms_key_arn,
        "bucket": resources.bucket,
        "state_dir": str(state),
        "targets": {
            SOURCE: {"engine": "postgresql-physical", "host": "127.0.0.1", "port": cluster.port, "user": "postgres"},
            CLONE: _destination(clone_data, cluster, server_python(world_root)) | {"port": clone_port},
            DRILL: _destination(world_root / "drill", cluster, server_python(world_root)),
        },
    }
    path = world_root / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o644)
    return path


@pytest.fixture
def world(cluster_support: None) -> Iterator[World]:
    root = owned_dir("pitr-e2e-")
    (root / "fleet.yaml").write_text(FLEET, encoding="utf-8")
    fleet = load_fleet(root / "fleet.yaml")
    clone_data, clone_port = root / "clone", free_port()
    with moto_server() as endpoint:
        resources = provision(fleet, endpoint.session())
        pipeline = LocalPipeline(endpoint, resources, root / "fleet.yaml")
        cluster = new_cluster(archive_command="false")  # the real command once the agent's config exists
        try:
            config = _agent_config(root, resources, cluster, clone_data, clone_port)
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(endpoint.environment().items()))
            push = (
                f"env {env} {shlex.quote(str(server_python(root)))} -m backup_agent.cli --config"
                f" {shlex.quote(str(config))} wal-push --target {SOURCE} %p"
            )
            cluster.configure(archive_command="'" + push.replace("'", "''") + "'")
            cluster.start()
            yield World(root, pipeline, cluster, config, clone_data, clone_port)
        finally:
            for data in (clone_data, root / "drill", cluster.data):
                if (data / "postmaster.pid").exists():
                    Cluster(data.parent, 0, cluster.bin_dir).run(
                        [str(cluster.bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False
                    )
            shutil.rmtree(cluster.root, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)


def _commit(cluster: Cluster, row: int) -> datetime:
    """Insert one row; the time its transaction committed (the server's clock)."""
    stamp = cluster.sql(
        f"INSERT INTO orders(id) VALUES ({row})"
        " RETURNING to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    )
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def _archived_through_now(cluster: Cluster, timeout: float = 60) -> None:
    """Switch to a new WAL file and wait until the server archived the one just completed."""
    done = cluster.sql("SELECT pg_walfile_name(pg_switch_wal())")
    cluster.wait_for(f"SELECT last_archived_wal >= '{done}' FROM pg_stat_archiver", "t", timeout)


def test_a_restore_requested_for_a_second_between_two_commits_clones_exactly_the_rows_committed_by_then(
    world: World,
) -> None:
    cluster, pipeline = world.cluster, world.pipeline
    cluster.sql("CREATE TABLE orders (id int PRIMARY KEY)")
    _commit(cluster, 0)
    _archived_through_now(cluster)

    pipeline.put_event(
        BackupRequested(request_id="base-1", target=SOURCE, requested_by="oncall@example.com", reason="first base")
    )
    pipeline.drain(pipeline.resources.backup_request_queue_url, "dispatcher", DISPATCHER)
    finished = world.agent_round()  # the clone destination's own scheduled backup fails: no server there yet
    assert finished.returncode in (0, 1), finished.stderr[-3000:]
    base = world.ledger().targets.get(SOURCE)
    assert base is not None
    assert base.last_good_key is not None, "the base backup is not a good run"

    _commit(cluster, 1)  # t1
    time.sleep(1.1)
    t2 = _commit(cluster, 2)
    time.sleep(1.1)
    _commit(cluster, 3)  # t3, more than a second after t2
    target_time = t2 + timedelta(milliseconds=500)
    _archived_through_now(cluster)
    pipeline.drain_audit()

    pipeline.put_event(
        RestoreRequested(
            restore_id="pitr-1",
            target=SOURCE,
            backup=BackupSelector(at=target_time),
            destination=CLONE,
            mode="clone",
            requested_by="oncall@example.com",
            reason="undo the bad migration of t3",
        )
    )
    finished = world.agent_round()  # (the destinations' own scheduled backups keep failing: exit 1)
    assert finished.returncode in (0, 1), finished.stderr[-3000:]

    restore = world.ledger().restores.get("pitr-1")
    assert restore is not None
    assert restore.state == "succeeded", (restore.state, restore.error, restore.rejection)
    clone = Cluster(world.clone_data.parent, world.clone_port, cluster.bin_dir)
    assert clone.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders") == "0,1,2"
    reached = datetime.fromisoformat(str((restore.verification or {}).get("reached_at")))
    assert t2 - timedelta(milliseconds=5) <= reached <= target_time

    # what the on-call engineer sees: the archive's newest file, from the real agent's heartbeat and events
    shown = subprocess.run(
        [sys.executable, "-m", "backupctl.cli", "--fleet", str(world.root / "fleet.yaml"), "--json", "status"],
        env={**os.environ, **pipeline.endpoint.environment(), "AWS_DEFAULT_REGION": pipeline.resources.region},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    row = next(r for r in json.loads(shown.stdout) if r["target"] == SOURCE)
    assert row["wal"]["newest_file"] == cluster.sql("SELECT last_archived_wal FROM pg_stat_archiver"), row
    assert row["wal"]["cell"].startswith("ok"), row["wal"]
    assert row["wal"]["server_current_file"] == cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")

    # the weekly drill of the PITR target: latest base backup + all archived WAL on its scratch target
    report = pipeline.tick_restore_drills(datetime.now(UTC)) or {}
    assert report.get("drills_dispatched"), report
    finished = world.agent_round()
    assert finished.returncode in (0, 1), finished.stderr[-3000:]
    drilled = world.ledger().targets.get(SOURCE)
    assert drilled is not None
    assert drilled.last_drill_ok is True, finished.stderr[-3000:]
    assert not (world.root / "drill").exists(), "the drill's scratch cluster was not removed"
