"""The pipeline's main job, locally, on embedded defaults (`make demo`).

Starts a moto server, provisions the stack's resources from the demo fleet, creates a sample SQLite
database, ticks the dispatcher, lets a real agent process back it up into SSE-KMS S3, routes the
agent's events through EventBridge → SQS into the audit handler, verifies the stored backup
independently, shows the status table, lets the watchdog catch a deliberately unreachable target,
silences it for a maintenance window (announced; its reminders held; shown in the status), and runs
a restore round trip into a protected target — requested by one person and approved by another
through the approvals URL (its local stand-in), after the requester's own approval is refused. Exits
non-zero, saying why, when any step fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources as package_files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from backup_contracts.events import SilenceRequested
from backup_contracts.fleet import Fleet, load_fleet
from local_pipeline.moto_server import moto_server
from local_pipeline.resources import LocalResources, provision
from local_pipeline.runner import LocalPipeline, PipelineStepError
from local_pipeline.sample_data import create_app_database, create_empty_database
from local_pipeline.verify import VerificationError, decompress, fetch_backup, sqlite_rows

if TYPE_CHECKING:
    from backup_functions.ledger import Ledger

DEMO_AGENT = "demo-host"
SOURCE_TARGET = "app-sqlite"
UNREACHABLE_TARGET = "nas-sqlite"


def default_fleet_file() -> Path:
    return Path(str(package_files.files("local_pipeline").joinpath("demo_fleet.yaml")))


@dataclass
class DemoWorld:
    """Everything the demo made, for the steps and for the end-to-end tests to inspect."""

    workdir: Path
    fleet: Fleet
    fleet_file: Path
    resources: LocalResources
    pipeline: LocalPipeline
    database_paths: dict[str, Path] = field(default_factory=dict)
    agent_config: Path | None = None
    backup_key: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def ledger(self) -> Ledger:
        from backup_functions.ledger import (
            Ledger,  # the functions' modules load once the pipeline set their environment
        )

        return Ledger(self.resources.ledger_table, self.pipeline.session.client("dynamodb"))


def agent_log_messages(stderr: str) -> list[str]:
    """The agent's JSON log lines as a person reads them: time, message, and any error."""
    lines = []
    for raw in stderr.splitlines():
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            lines.append(raw[:200])
            continue
        detail = record.get("error") or record.get("stats") or ""
        lines.append(f"{record.get('time', '')[11:19]} {record.get('message', '')} {detail}".rstrip()[:200])
    return lines


def write_agent_config(world: DemoWorld) -> Path:
    """The host owner's config for demo-host: how to reach each target. No credentials needed for SQLite."""
    agent = next(a for a in world.fleet.agents if a.name == DEMO_AGENT)
    targets: dict[str, Any] = {}
    for target in agent.targets:
        if target.name == UNREACHABLE_TARGET:
            path = Path("/mnt/nas-offline/app.db")  # the volume is not mounted: every backup must fail loudly
        else:
            path = world.workdir / "data" / f"{target.name}.db"
        world.database_paths[target.name] = path
        targets[target.name] = {"engine": "sqlite", "path": str(path)}
    config = {
        "agent": DEMO_AGENT,
        "region": world.resources.region,
        "queue_url": world.resources.agent_queue_urls[DEMO_AGENT],
        "bus_name": world.resources.bus_name,
        "kms_key_id": world.resources.kms_key_arn,
        "bucket": world.resources.bucket,
        "state_dir": str(world.workdir / "agent-state"),
        "targets": targets,
    }
    path = world.workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class Demo:
    def __init__(self, world: DemoWorld, out: Callable[[str], None]) -> None:
        self.world = world
        self.out = out
        self.now = datetime.now(UTC)

    def step(self, title: str) -> None:
        self.out(f"\n== {title}")

    def seed(self) -> None:
        self.step("Sample data")
        data = self.world.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.world.agent_config = write_agent_config(self.world)
        rows = create_app_database(self.world.database_paths[SOURCE_TARGET])
        for name, path in self.world.database_paths.items():
            if name not in (SOURCE_TARGET, UNREACHABLE_TARGET):
                create_empty_database(path)
        self.out(f"{SOURCE_TARGET}: {rows} rows in {self.world.database_paths[SOURCE_TARGET]}")
        self.out(f"{UNREACHABLE_TARGET}: {self.world.database_paths[UNREACHABLE_TARGET]} (volume not mounted)")

    def backup_cycle(self) -> None:
        self.step(f"Dispatcher tick at {self.now:%Y-%m-%d %H:%M} UTC")
        result = self.world.pipeline.tick_dispatcher(self.now) or {}
        self.out(
            f"{result.get('due', '?')} of {result.get('targets', '?')} targets due: {result.get('created', '?')}"
            f" expected-run rows written, {result.get('sent', '?')} jobs sent to the agent queues"
        )
        if result.get("not_sent"):
            raise PipelineStepError(f"the dispatcher could not send jobs: {result['not_sent']}")

        self.step(f"Agent {DEMO_AGENT} (a real `backup-agent run --once` process)")
        assert self.world.agent_config is not None  # noqa: S101 - set by seed()
        finished = self.world.pipeline.run_agent(self.world.agent_config)
        self.out(f"agent exited {finished.returncode}; its log:")
        for line in agent_log_messages(finished.stderr):
            self.out(f"  {line}")
        if finished.returncode not in (0, 1):  # 1 = some job failed, which the unreachable target must do
            raise PipelineStepError(f"the agent crashed (exit {finished.returncode}): {finished.stderr[-2000:]}")

        self.step("Audit: agent events → EventBridge rule → SQS → audit handler → ledger")
        self.out(f"audit handled {self.world.pipeline.drain_audit()} events")

    def verify_backup(self) -> None:
        self.step(f"Independent check of the {SOURCE_TARGET} backup in S3")
        state = self.world.ledger().targets.get(SOURCE_TARGET)
        if state is None or state.last_good_key is None:
            raise VerificationError(f"the ledger records no good backup of {SOURCE_TARGET}")
        key = state.last_good_key
        s3 = self.world.pipeline.session.client("s3")
        stored = fetch_backup(s3, self.world.resources.bucket, key, self.world.workdir / "backup.zst")
        if stored.sse != "aws:kms" or self.world.resources.kms_key_arn.rsplit("/", 1)[-1] not in stored.kms_key_id:
            raise VerificationError(f"{key} is not SSE-KMS encrypted with the pipeline key: {stored}")
        if stored.sha256 != state.last_good_sha256:
            raise VerificationError(f"{key}: sha256 {stored.sha256} differs from the ledger's")
        restored = self.world.workdir / "backup.db"
        decompress(self.world.workdir / "backup.zst", restored)
        if sqlite_rows(restored) != sqlite_rows(self.world.database_paths[SOURCE_TARGET]):
            raise VerificationError(f"{key} does not decompress to a database equal to the source")
        self.world.backup_key = key
        self.out(f"s3://{self.world.resources.bucket}/{key}")
        self.out(
            f"  {stored.size} bytes stored, SSE-KMS ({stored.kms_key_id.rsplit('/', 1)[-1]}), sha256 {stored.sha256}"
        )
        self.out("  decompresses to a valid SQLite database equal to the source (every row of every table)")

    def status(self, title: str) -> None:
        from backupctl.status import render_status_table

        self.step(title)
        self.out(
            render_status_table(
                self.world.pipeline.session, self.world.resources.ledger_table, self.world.fleet, now=self.now
            )
        )

    def show_alerts(self, title: str) -> list[dict[str, Any]]:
        alerts = self.world.pipeline.alerts()
        self.world.alerts.extend(alerts)
        self.step(f"{title}: {len(alerts)} alert(s) in the on-call inbox")
        for alert in alerts:
            self.out(f"Subject: {alert['subject']}")
            self.out("\n".join(f"  {line}" for line in alert["message"].splitlines()))
        return alerts

    def replicate(self) -> None:
        vault = self.world.resources.vault
        if vault is not None:
            self.step(f"Off-site copy: S3 replication into the vault s3://{vault.bucket} ({vault.region})")
            copied = self.world.pipeline.replicate()
            self.out(f"{len(copied)} object(s) copied by the local stand-in of S3 replication (moto has none)")

    def watchdog(self) -> None:
        later = self.now + timedelta(hours=2, minutes=30)
        self.step(f"Watchdog tick at {later:%Y-%m-%d %H:%M} UTC (the clock jumps 2.5 h ahead)")
        report = self.world.pipeline.tick_watchdog(later) or {}
        if self.world.resources.vault is not None:
            self.out(f"off-site copies verified in the vault: {(report.get('offsite') or {}).get('verified')}")
        alerts = self.show_alerts("Watchdog")
        if not any(UNREACHABLE_TARGET in alert["subject"] for alert in alerts):
            raise PipelineStepError(f"the watchdog raised no alert for the unreachable target {UNREACHABLE_TARGET}")
        self.now = later

    def silence(self) -> None:
        """A maintenance window on the broken target: announced, reminders held, shown by status."""
        request = SilenceRequested(
            silence_id="s-demo-maintenance",
            target=UNREACHABLE_TARGET,
            expires_at=self.now + timedelta(hours=2),
            requested_by="alice@example.com",
            reason="the demo's database host is being rebuilt",
        )
        self.step(f"Silence {UNREACHABLE_TARGET} for 2 h (backupctl silence: a Silence Requested on the bus)")
        self.world.pipeline.put_event(request)
        self.world.pipeline.drain_silences(self.now)  # the watchdog's queue: recorded and announced at once
        later = self.now + timedelta(hours=1, minutes=5)  # past a reminder interval: the reminder is held
        self.world.pipeline.tick_dispatcher(later)
        self.world.pipeline.tick_watchdog(later)
        alerts = self.show_alerts("Silence set, then the watchdog an hour later")
        kinds = [(a["attributes"].get("kind"), a["attributes"].get("target")) for a in alerts]
        if ("silence", None) not in kinds or any(t == UNREACHABLE_TARGET and k != "silence" for k, t in kinds):
            raise PipelineStepError(f"the silence did not hold {UNREACHABLE_TARGET}: {[a['subject'] for a in alerts]}")
        self.now = later


def run_demo(workdir: Path, fleet_file: Path | None = None, out: Callable[[str], None] = print) -> DemoWorld:
    fleet_file = fleet_file or default_fleet_file()
    fleet = load_fleet(fleet_file)
    with moto_server() as endpoint:
        out(f"moto server (standing in for AWS) on {endpoint.url}")
        resources = provision(fleet, endpoint.session())
        out(
            f"provisioned from {fleet_file.name}: KMS key, bucket {resources.bucket}, ledger {resources.ledger_table},"
            f" bus {resources.bus_name}, {len(resources.agent_queue_urls)} agent queue(s), alert topic"
        )
        world = DemoWorld(workdir, fleet, fleet_file, resources, LocalPipeline(endpoint, resources, fleet_file))
        demo = Demo(world, out)
        demo.seed()
        demo.backup_cycle()
        demo.verify_backup()
        failed = demo.show_alerts("Alerts sent at once")
        if not any(UNREACHABLE_TARGET in alert["subject"] for alert in failed):
            raise PipelineStepError(f"no immediate alert for the failed backup of {UNREACHABLE_TARGET}")
        demo.status("Status (backupctl status): the off-site copy is pending")
        demo.replicate()
        demo.watchdog()
        demo.silence()
        demo.status("Status during the silence (backupctl status): off-site ok")
        from local_pipeline.demo_restore import RestoreDemo  # it builds on Demo

        restores = RestoreDemo(demo)
        restores.restore_round_trip()
        restores.drill()
        demo.status("Status after the restore and the drill (backupctl status)")
        return world


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fleet", type=Path, help="fleet file (default: the embedded demo fleet)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory for inspection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="backup-pipeline-demo-"))
    try:
        run_demo(workdir, args.fleet)
    except (PipelineStepError, VerificationError) as exc:
        sys.stderr.write(f"\nDEMO FAILED: {exc}\n")
        return 1
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            sys.stderr.write(f"working directory kept: {workdir}\n")
    print("\nDemo finished: every step above ran for real against the local pipeline.")
    return 0
