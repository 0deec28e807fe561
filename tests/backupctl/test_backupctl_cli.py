"""backupctl against a provisioned pipeline in moto: status, history, backup-now, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ctl_env import Pipeline, write_fleet

from backup_contracts.events import BackupFailed, BackupStarted, BackupSucceeded
from backupctl.cli import main

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
SHA = "a" * 64


def _run_events(run_id: str, started: datetime, *, ok: bool) -> tuple[BackupStarted, BackupSucceeded | BackupFailed]:
    common = {
        "job_id": f"orders.{run_id}",
        "run_id": run_id,
        "target": "orders",
        "agent": "db-host",
        "started_at": started,
        "bucket": "b",
        "key": f"agents/db-host/orders/{run_id}.dump.zst",
    }
    finished = started + timedelta(minutes=2)
    end: BackupSucceeded | BackupFailed
    if ok:
        end = BackupSucceeded(
            **common,
            finished_at=finished,
            bytes_in=4096,
            bytes_stored=2048,
            sha256=SHA,
            engine="postgresql",
            format="custom",
            compression="zstd",
            duration_s=120.0,
        )
    else:
        end = BackupFailed(**common, finished_at=finished, stage="dump", exit_code=1, error="connection refused")
    return BackupStarted(**common), end


def _record_run(p: Pipeline, run_id: str, started: datetime, *, ok: bool) -> None:
    start, end = _run_events(run_id, started, ok=ok)
    expires = NOW + timedelta(days=30)
    p.ledger.runs.started(start, expires_at=expires)
    p.ledger.runs.ended(end, "succeeded" if ok else "failed", expires_at=expires)
    if isinstance(end, BackupSucceeded):
        p.ledger.targets.record_good_backup(
            "orders",
            "db-host",
            run_id=run_id,
            finished_at=end.finished_at,
            rpo=timedelta(hours=26),
            bucket="b",
            key=end.key,
            version_id=None,
            bytes_stored=end.bytes_stored,
            sha256=SHA,
            engine="postgresql",
        )


def test_status_json_lists_every_target_of_the_fleet_with_its_state(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    _record_run(pipeline, "r-1", NOW - timedelta(hours=3), ok=True)

    code = main(["--fleet", str(pipeline.fleet_file), "--json", "status"])
    rows = {row["target"]: row for row in json.loads(capsys.readouterr().out)}

    assert code == 0
    assert set(rows) == {"orders", "shop"}
    assert rows["orders"]["state"] == "OK"
    assert rows["orders"]["last_good_bytes"] == 2048
    assert rows["shop"]["state"] == "NO BACKUP YET"


def test_status_table_without_a_tty_has_no_colour(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    _record_run(pipeline, "r-1", NOW - timedelta(hours=30), ok=True)

    code = main(["--fleet", str(pipeline.fleet_file), "status", "--fail-on-breach"])
    out = capsys.readouterr().out

    assert code == 1
    assert "RPO BREACHED" in out
    assert "\033[" not in out


def test_history_lists_runs_newest_first(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    _record_run(pipeline, "r-old", NOW - timedelta(days=2), ok=True)
    _record_run(pipeline, "r-new", NOW - timedelta(hours=1), ok=False)

    code = main(["--fleet", str(pipeline.fleet_file), "--json", "history", "orders"])
    runs = json.loads(capsys.readouterr().out)

    assert code == 0
    assert [(r["run_id"], r["state"]) for r in runs] == [("r-new", "failed"), ("r-old", "succeeded")]
    assert runs[0]["error"] == "connection refused"


def test_backup_now_puts_a_backup_requested_event_on_the_bus(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--fleet", str(pipeline.fleet_file), "--json", "backup-now", "orders", "--reason", "before migration"])
    printed = json.loads(capsys.readouterr().out)
    sqs = pipeline.session.client("sqs")
    messages = sqs.receive_message(QueueUrl=pipeline.resources.backup_request_queue_url, MaxNumberOfMessages=10)
    (event,) = [json.loads(m["Body"]) for m in messages["Messages"]]

    assert code == 0
    assert event["detail-type"] == "Backup Requested"
    assert event["detail"]["target"] == "orders"
    assert event["detail"]["reason"] == "before migration"
    assert event["detail"]["request_id"] == printed["request_id"]


def test_backup_now_refuses_a_target_that_is_not_in_the_fleet(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--fleet", str(pipeline.fleet_file), "backup-now", "nope", "--reason", "x"])

    assert code == 2
    assert "unknown target 'nope'" in capsys.readouterr().err


def test_missing_fleet_file_without_table_flag_says_how_to_fix(
    tmp_path: Path, aws_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--fleet", str(tmp_path / "absent.yaml"), "history", "orders"])

    assert code == 2
    assert "--table" in capsys.readouterr().err


@pytest.mark.slow
def test_backupctl_command_works_against_a_moto_server_through_aws_endpoint_url(
    tmp_path: Path, aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from backup_contracts.fleet import load_fleet
    from local_pipeline.resources import provision

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        fleet_file = write_fleet(tmp_path)
        provision(load_fleet(fleet_file), boto3.Session(region_name="us-east-1"))
        result = subprocess.run(
            [str(Path(sys.executable).with_name("backupctl")), "status"],
            env={**os.environ, "BACKUP_FLEET_FILE": str(fleet_file)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.stop()

    assert result.returncode == 0, result.stderr
    assert "orders" in result.stdout
    assert "NO BACKUP YET" in result.stdout
