"""Drills and a restore on the local pipeline: moto server, the stack's resources, the dispatcher, real
agent processes (``backup-agent run --once``), the audit and restore handlers fed from their queues."""

from __future__ import annotations

import sqlite3
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from backup_contracts.fleet import Fleet, parse_fleet
from backup_functions import settings as settings_module
from backup_functions.ledger import Ledger
from backup_functions.restore import handler as restore_handler
from local_pipeline.moto_server import moto_server
from local_pipeline.resources import provision
from local_pipeline.runner import LambdaContext, LocalPipeline, environment, scheduled_event

pytestmark = pytest.mark.e2e

AGENT = "demo-host"
FLEET: dict[str, Any] = {
    "version": 1,
    "pipeline": {"name": "drl", "heartbeat_timeout_minutes": 240},
    "retention_classes": {"standard": {"daily_days": 7}},
    "agents": [
        {
            "name": AGENT,
            "targets": [
                {
                    "name": "app",
                    "engine": "sqlite",
                    "schedule": "rate(1 day)",
                    "rpo": "26h",
                    "restore_to": ["app-copy"],
                    "drill": {"schedule": "rate(7 days)", "destination": "app-drill"},
                },
                {"name": "app-copy", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "2d"},
                {"name": "app-drill", "engine": "sqlite", "schedule": "rate(7 days)", "rpo": "8d"},
                {
                    "name": "ledgerdb",
                    "engine": "sqlite",
                    "schedule": "rate(1 day)",
                    "rpo": "26h",
                    "drill": {"schedule": "rate(7 days)", "destination": "ledgerdb-drill"},
                },
                # the scratch destination of ledgerdb's drill is missing from the host's config: its drill fails
                {"name": "ledgerdb-drill", "engine": "sqlite", "schedule": "rate(7 days)", "rpo": "8d"},
            ],
        }
    ],
}


def _database(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"value {i}") for i in range(rows)])
    conn.commit()
    conn.close()


def _rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.execute("SELECT * FROM t ORDER BY id"))
    finally:
        conn.close()


class Local:
    def __init__(self, workdir: Path, fleet: Fleet, fleet_file: Path, pipeline: LocalPipeline) -> None:
        self.workdir = workdir
        self.fleet = fleet
        self.pipeline = pipeline
        self.paths = {name: workdir / "data" / f"{name}.db" for name in ("app", "app-copy", "app-drill", "ledgerdb")}
        targets = {name: {"engine": "sqlite", "path": str(path)} for name, path in self.paths.items()}
        resources = pipeline.resources
        config = {
            "agent": AGENT,
            "region": resources.region,
            "queue_url": resources.agent_queue_urls[AGENT],
            "bus_name": resources.bus_name,
            "kms_key_id": resources.kms_key_arn,
            "bucket": resources.bucket,
            "state_dir": str(workdir / "agent-state"),
            "targets": targets,
        }
        self.agent_config = workdir / "agent.yaml"
        self.agent_config.write_text(yaml.safe_dump(config), encoding="utf-8")

    def run_agent(self) -> None:
        finished = self.pipeline.run_agent(self.agent_config)
        assert finished.returncode in (0, 1), finished.stderr[-3000:]

    def restore_tick(self, now: datetime) -> Any:
        """The restore coordinator's scheduled entry (the stack's schedule rule → Lambda)."""
        resources = self.pipeline.resources
        event = scheduled_event(resources, "restore-tick", now)
        with environment(self.pipeline.function_environment), self.pipeline.clock.at(now):
            return restore_handler.handler(
                event, LambdaContext.for_function(f"{resources.pipeline}-restore", resources)
            )

    def drain(self) -> None:
        self.pipeline.drain_audit()
        self.pipeline.drain_restore_events()

    def ledger(self) -> Ledger:
        return Ledger(self.pipeline.resources.ledger_table, self.pipeline.session.client("dynamodb"))


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    fleet = parse_fleet(FLEET)
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(FLEET), encoding="utf-8")
    with moto_server() as endpoint:
        # moto servers in one process share their backends: start from nothing
        reset = urllib.request.Request(f"{endpoint.url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
        urllib.request.urlopen(reset).read()  # noqa: S310
        resources = provision(fleet, endpoint.session())
        pipeline = LocalPipeline(endpoint, resources, fleet_file)  # builds every function's runtime afresh
        with environment(pipeline.function_environment):
            world = Local(tmp_path, fleet, fleet_file, pipeline)
            yield world
        _forget_runtimes()


def _forget_runtimes() -> None:
    """The handlers cache their clients per process (as a Lambda container does): this test's moto
    server is a new one, so drop what an earlier test built."""
    from backup_functions.audit import handler as audit_handler
    from backup_functions.dispatcher import handler as dispatcher_handler

    settings_module.settings.cache_clear()
    for module in (audit_handler, dispatcher_handler, restore_handler):
        module.configure(None)


@pytest.mark.slow
def test_a_drill_on_the_local_pipeline_records_an_rto_and_a_failing_drill_alerts(local: Local) -> None:
    now = datetime.now(UTC)
    _database(local.paths["app"], 300)
    _database(local.paths["ledgerdb"], 50)
    _database(local.paths["app-copy"], 1)
    local.pipeline.tick_dispatcher(now)
    local.run_agent()
    local.drain()
    local.pipeline.alerts()  # backups of the scratch targets fail (they do not exist yet): not this test's concern

    report = local.restore_tick(now)
    local.run_agent()
    local.drain()

    assert len(report["drills_dispatched"]) == 2
    states = local.ledger().targets.get_many(["app", "ledgerdb"])
    assert states["app"].last_drill_ok is True
    assert (states["app"].last_drill_rto_s or 0) > 0
    assert not local.paths["app-drill"].exists()  # cleaned up
    assert states["ledgerdb"].last_drill_ok is False
    alerts = local.pipeline.alerts()
    drill_alerts = [a for a in alerts if "RESTORE DRILL FAILED" in a["subject"]]
    assert len(drill_alerts) == 1
    assert "ledgerdb" in drill_alerts[0]["subject"]
    assert "ledgerdb-drill" in drill_alerts[0]["message"]


@pytest.mark.slow
def test_a_restore_request_on_the_local_pipeline_clones_the_data(local: Local) -> None:
    now = datetime.now(UTC)
    _database(local.paths["app"], 120)
    local.pipeline.tick_dispatcher(now)
    local.run_agent()
    local.drain()
    expected = _rows(local.paths["app"])

    events = local.pipeline.session.client("events")
    from backup_contracts.events import RestoreRequested, put_events_entry

    request = RestoreRequested(
        restore_id="r-local-1", target="app", destination="app-copy", requested_by="test", reason="local round trip"
    )
    events.put_events(Entries=[put_events_entry(request, local.pipeline.resources.bus_name)])
    local.drain()
    local.run_agent()
    local.drain()

    assert _rows(local.paths["app-copy"]) == expected
    item = local.ledger().client.get("RESTORE#r-local-1", "STATE")
    assert item is not None
    assert item["state"] == "succeeded"
    assert [s["state"] for s in item["history"]] == ["requested", "dispatched", "running", "succeeded"]
