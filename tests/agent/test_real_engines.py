"""The pipeline with the real engines (SQLite, command) end to end against a moto server."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import threading
from pathlib import Path

import boto3
import pytest
import zstandard

from backup_agent.config import parse_config
from backup_agent.engines import build_engine
from backup_agent.events import EventBridgeSink
from backup_agent.pipeline import BackupRun
from backup_agent.secrets import SecretResolver

from .conftest import REGION, Stack, config_yaml, make_job

pytestmark = pytest.mark.integration


def _sqlite_db(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
    conn.executemany(
        "INSERT INTO orders (customer, total) VALUES (?, ?)", ((f"customer-{i}", i * 1.5) for i in range(rows))
    )
    conn.commit()
    conn.close()


def _run(stack: Stack, tmp_path: Path, target: dict) -> tuple:
    config = parse_config(config_yaml(stack, tmp_path / "state", targets={"app": target}))
    engine = build_engine("app", config.targets["app"], SecretResolver())
    run = BackupRun(
        make_job(stack),
        engine,
        config,
        s3=boto3.client("s3", region_name=REGION),
        events=EventBridgeSink(stack.events, stack.bus),
    )
    return run.execute(), engine


def test_sqlite_backup_while_the_app_writes_restores_to_a_consistent_database(stack: Stack, tmp_path: Path):
    db = tmp_path / "app.db"
    _sqlite_db(db, 20_000)
    stop = threading.Event()

    def app_keeps_writing() -> None:
        conn = sqlite3.connect(db, timeout=30)
        while not stop.is_set():
            conn.execute("INSERT INTO orders (customer, total) VALUES ('late', 1)")
            conn.commit()
        conn.close()

    writer = threading.Thread(target=app_keeps_writing)
    writer.start()
    try:
        outcome, _ = _run(stack, tmp_path, {"engine": "sqlite", "path": str(db)})
    finally:
        stop.set()
        writer.join()

    assert outcome.ok, outcome.event
    stored = stack.s3.get_object(Bucket=stack.bucket, Key=outcome.event.key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == outcome.event.sha256
    assert outcome.event.key.endswith(".sqlite.zst") or outcome.event.key.endswith(".zst")
    restored = tmp_path / "restored.db"
    restored.write_bytes(zstandard.ZstdDecompressor().stream_reader(stored).read())
    conn = sqlite3.connect(restored)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM orders WHERE customer LIKE 'customer-%'").fetchone()[0] == 20_000
    conn.close()
    assert stack.s3.head_object(Bucket=stack.bucket, Key=outcome.event.key)["ServerSideEncryption"] == "aws:kms"


def test_sqlite_backup_of_a_missing_database_fails_without_an_object(stack: Stack, tmp_path: Path):
    outcome, _ = _run(stack, tmp_path, {"engine": "sqlite", "path": str(tmp_path / "missing.db")})

    assert not outcome.ok
    assert outcome.event.stage in ("dump", "verify")
    assert stack.objects() == []
    assert stack.uploads() == []


def test_command_engine_with_wrong_magic_fails_at_verify(stack: Stack, tmp_path: Path):
    target = {
        "engine": "command",
        "dump_command": [sys.executable, "-c", "import sys; sys.stdout.write('not-the-magic' * 1000)"],
        "restore_command": ["cat"],
        "magic_hex": "8199e26d",
    }
    outcome, _ = _run(stack, tmp_path, target)

    assert not outcome.ok
    assert outcome.event.stage == "verify"
    assert stack.objects() == []
    assert stack.uploads() == []
