"""The restore executor's point-in-time wiring, with an in-memory physical engine and presigned URLs served
from memory: the job's WAL index is fetched and checked before anything is restored, written where the
restored server can read it, handed over as a restore_command running this agent's wal-fetch, removed
afterwards; and the report must show recovery stopped at or before the target, on the backup's system."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import zstandard

from backup_agent.config import AgentConfig, parse_config
from backup_agent.engines.base import RecoveringEngine, Recovery, RestoreMode, RestoreReport, Versions
from backup_agent.events import RecordingSink
from backup_agent.restore import RestoreRun
from backup_agent.restore.wal_replay import recovery_for
from backup_contracts.events import RestoreFailed, RestoreSucceeded
from backup_contracts.jobs import Job, RestoreSource, WalReplay
from backup_contracts.wal import WalIndex, WalIndexEntry

pytestmark = pytest.mark.unit

AGENT = "db-host"
BASE_URL = "https://bucket.s3.example/agents/db-host/orders-pitr/base.tar.zst?X-Amz-Signature=abc"
INDEX_URL = "https://bucket.s3.example/restores/r-1/wal-index.json?X-Amz-Signature=def"
TARGET_TIME = datetime(2026, 12, 3, 9, 41, 7, tzinfo=UTC)
SYSTEM_ID = "7312345678901234567"


@dataclass
class PhysicalFake:
    """A RecoveringEngine that records what it was given and reports what the test says."""

    reached_at: str | None = "2026-12-03T09:41:06.500000+00:00"
    reports_reached: bool = True
    system_identifier: str = SYSTEM_ID
    name: str = "postgresql-physical"
    format: str = "pg_basebackup-tar"
    extension: str = "tar"
    recoveries: list[Recovery] = field(default_factory=list)
    seen_index: list[bytes] = field(default_factory=list)
    restored: list[bytes] = field(default_factory=list)

    def versions(self) -> Versions:
        return Versions("pg_basebackup 15", "15")

    def check(self) -> list[str]:
        return []

    def start_dump(self) -> Any:
        raise NotImplementedError

    def validator(self) -> Any:
        raise NotImplementedError

    def restore(self, stream: BinaryIO, *, mode: RestoreMode) -> RestoreReport:
        raise AssertionError("a physical restore replays WAL: restore_with_wal, never restore")

    def drop_restored(self) -> str:
        return "removed"

    def restore_with_wal(self, stream: BinaryIO, *, mode: RestoreMode, recovery: Recovery) -> RestoreReport:
        self.recoveries.append(recovery)
        self.seen_index.append(index_path_of(recovery.restore_command).read_bytes())
        self.restored.append(stream.read())
        verification: dict[str, Any] = {"system_identifier": self.system_identifier, "timeline": 2}
        if self.reports_reached:
            verification["reached_at"] = self.reached_at
        return RestoreReport("postgresql://127.0.0.1:5439", verification)


def wal_fetch_argv(restore_command: str) -> list[str]:
    """The wal-fetch part of the restore_command (the shell moves an already prefetched file itself)."""
    match = re.search(r"; else (.*) %f %p; fi$", restore_command)
    assert match, restore_command
    return shlex.split(match.group(1))


def index_path_of(restore_command: str) -> Path:
    argv = wal_fetch_argv(restore_command)
    return Path(argv[argv.index("--index") + 1])


def index_bytes(target: str = "orders-pitr", files: int = 2) -> bytes:
    entries = [
        WalIndexEntry(
            name=f"0000000100000000000000{n:02X}",
            url=f"https://bucket.s3.example/wal/{n}?X-Amz-Signature=x",
            sha256="0" * 64,
            bytes_stored=100,
            compression="zstd-1",
        )
        for n in range(1, files + 1)
    ]
    index = WalIndex(target=target, timeline=1, start_file=entries[0].name, files=entries)
    return index.model_dump_json().encode()


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.base = zstandard.ZstdCompressor().compress(b"base backup tar stream" * 100)
        self.index = index_bytes()
        self.urls: dict[str, bytes] = {}
        self.events = RecordingSink()

    def config(self, destination: dict[str, Any] | None = None) -> AgentConfig:
        data = {
            "agent": AGENT,
            "region": "us-east-1",
            "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
            "bus_name": "bus",
            "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/k",
            "state_dir": str(self.tmp_path / "state"),
            "targets": {
                "orders-pitr-clone": destination
                or {"engine": "postgresql-physical", "data_directory": str(self.tmp_path / "clone"), "port": 5439}
            },
        }
        return parse_config(json.dumps(data))

    def job(self, *, wal: bool = True, index: bytes | None = None, **replay: Any) -> Job:
        index = self.index if index is None else index
        self.urls = {BASE_URL: self.base, INDEX_URL: index}
        now = datetime.now(UTC)
        fields: dict[str, Any] = {
            "recovery_target": "time",
            "recovery_target_time": TARGET_TIME,
            "index_url": INDEX_URL,
            "index_sha256": hashlib.sha256(self.index).hexdigest(),
            "index_bytes": len(self.index),
            "files": 2,
            "last_file": "000000010000000000000002",
            **replay,
        }
        return Job(
            job_id="r-1",
            kind="restore",
            agent=AGENT,
            target="orders-pitr-clone",
            trigger="user",
            issued_at=now,
            deadline=now + timedelta(hours=1),
            bucket="bucket",
            key_prefix="agents/db-host/",
            retention_class="standard",
            restore_id="r-1",
            destination="orders-pitr-clone",
            mode="clone",
            source=RestoreSource(
                run_id="run-1",
                target="orders-pitr",
                bucket="bucket",
                key="agents/db-host/orders-pitr/base.tar.zst",
                sha256=hashlib.sha256(self.base).hexdigest(),
                bytes_stored=len(self.base),
                engine="postgresql-physical",
                format="pg_basebackup-tar",
                compression="zstd-1",
                presigned_url=BASE_URL,
                manifest_facts={"system_identifier": SYSTEM_ID},
                wal=WalReplay(**fields) if wal else None,
            ),
        )

    def opener(self, url: str, _timeout: float) -> BinaryIO:
        return io.BytesIO(self.urls[url])

    def run(self, job: Job, engine: Any, config: AgentConfig | None = None) -> RestoreSucceeded | RestoreFailed:
        outcome = RestoreRun(
            job,
            config or self.config(),
            engine_factory=lambda _name: engine,
            events=self.events,
            opener=self.opener,
            spool_dir=self.tmp_path / "spool",
        ).execute()
        return outcome.event


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_the_fake_is_a_recovering_engine() -> None:
    assert isinstance(PhysicalFake(), RecoveringEngine)


def test_a_point_in_time_restore_hands_the_engine_a_restore_command_over_the_checked_index(world: World) -> None:
    engine = PhysicalFake()

    event = world.run(world.job(), engine)

    assert isinstance(event, RestoreSucceeded), event
    [recovery] = engine.recoveries
    assert recovery.target_time == TARGET_TIME
    assert engine.seen_index == [world.index]
    assert engine.restored == [b"base backup tar stream" * 100]
    argv = wal_fetch_argv(recovery.restore_command)
    assert argv[:5] == [sys.executable, "-P", "-m", "backup_agent.entry", "wal-fetch"]
    index_path = index_path_of(recovery.restore_command)
    assert recovery.restore_command.startswith(f'f={index_path.parent / "cache"}/%f; if [ -f "$f" ]; then mv')
    assert not index_path.parent.exists()  # the index and its prefetch cache are gone once the restore is over
    checks = event.verification["checks"]
    assert checks["reached_at"] == "2026-12-03T09:41:06.500000+00:00"
    assert checks["recovery_target_time"] == TARGET_TIME.isoformat()
    assert checks["system_identifier"] == SYSTEM_ID


def test_the_index_is_private_to_the_restore(world: World) -> None:
    modes: list[int] = []

    class Peeking(PhysicalFake):
        def restore_with_wal(self, stream: BinaryIO, *, mode: RestoreMode, recovery: Recovery) -> RestoreReport:
            path = index_path_of(recovery.restore_command)
            modes.extend([path.parent.stat().st_mode & 0o777, path.stat().st_mode & 0o777])
            return super().restore_with_wal(stream, mode=mode, recovery=recovery)

    assert isinstance(world.run(world.job(), Peeking()), RestoreSucceeded)
    assert modes == [0o700, 0o600]


@pytest.mark.parametrize(
    ("index", "said"),
    [
        (index_bytes().replace(b"orders-pitr", b"orders-pitx"), "SHA-256"),
        (index_bytes()[:-1], "bytes, the job recorded"),
    ],
    ids=["changed", "truncated"],
)
def test_a_changed_index_is_refused_before_the_destination_is_touched(world: World, index: bytes, said: str) -> None:
    engine = PhysicalFake()

    event = world.run(world.job(index=index), engine)

    assert isinstance(event, RestoreFailed)
    assert event.stage == "verify-object"
    assert said in event.error
    assert not event.destination_touched
    assert engine.recoveries == []


def test_an_index_that_does_not_match_the_job_is_refused(world: World) -> None:
    world.index = index_bytes(files=3)
    engine = PhysicalFake()

    event = world.run(world.job(), engine)

    assert isinstance(event, RestoreFailed)
    assert event.stage == "verify-object"
    assert "lists 3 files, the job says 2" in event.error
    assert "its last file is 000000010000000000000003" in event.error
    assert engine.recoveries == []


def test_a_physical_destination_without_wal_in_the_job_is_a_config_failure_naming_the_fix(world: World) -> None:
    engine = PhysicalFake()

    event = world.run(world.job(wal=False), engine)

    assert isinstance(event, RestoreFailed)
    assert event.stage == "config"
    assert "replays archived WAL, but job r-1 carries none" in event.error
    assert "Fix:" in event.error
    assert engine.recoveries == []


def test_wal_for_a_destination_that_cannot_replay_it_is_a_config_failure(world: World) -> None:
    class Logical(PhysicalFake):
        restore_with_wal = None  # type: ignore[assignment]

    config = world.config({"engine": "sqlite", "path": str(world.tmp_path / "db.sqlite")})
    event = world.run(world.job(), Logical(name="sqlite"), config)

    assert isinstance(event, RestoreFailed)
    assert event.stage == "config"
    assert "which cannot" in event.error


def test_a_recovery_that_went_past_the_target_fails_verification(world: World) -> None:
    event = world.run(world.job(), PhysicalFake(reached_at="2026-12-03T09:41:08+00:00"))

    assert isinstance(event, RestoreFailed)
    assert event.stage == "verify-restore"
    assert "after the target" in event.error


def test_a_restore_that_does_not_say_where_recovery_stopped_fails_verification(world: World) -> None:
    event = world.run(world.job(), PhysicalFake(reports_reached=False))

    assert isinstance(event, RestoreFailed)
    assert "did not report the time recovery reached" in event.error


def test_a_restore_that_replayed_no_commit_after_the_base_backup_is_verified_saying_so(world: World) -> None:
    event = world.run(world.job(), PhysicalFake(reached_at=None))

    assert isinstance(event, RestoreSucceeded), getattr(event, "error", "")
    assert event.verification["checks"]["reached_at"] == "no transaction replayed after the base backup"


def test_another_clusters_system_identifier_fails_verification(world: World) -> None:
    event = world.run(world.job(), PhysicalFake(system_identifier="1"))

    assert isinstance(event, RestoreFailed)
    assert event.stage == "verify-restore"
    assert f"system identifier is 1, the base backup's {SYSTEM_ID}" in event.error


def test_a_replay_to_the_end_sets_no_target_time(world: World) -> None:
    engine = PhysicalFake()

    event = world.run(world.job(recovery_target="end", recovery_target_time=None), engine)

    assert isinstance(event, RestoreSucceeded), event
    assert engine.recoveries[0].target_time is None
    assert "recovery_target_time" not in event.verification["checks"]


def as_postgres_runs_it(restore_command: str, name: str) -> str:
    """The restore_command as PostgreSQL hands it to the shell for ``name``."""
    expanded = restore_command.replace("%f", name).replace("%p", "pg_wal/RECOVERYXLOG")
    return expanded.replace("%%", "%")


def test_a_prefetched_file_is_moved_into_place_by_the_shell_and_anything_else_goes_to_wal_fetch(
    tmp_path: Path,
) -> None:
    wal = WalReplay(recovery_target="end", index_sha256="0" * 64, index_bytes=1, files=2, last_file="x")
    index = tmp_path / "restore 100%" / "wal-index.json"  # a space and a % survive both quotings
    recovery = recovery_for(wal, index, python=str(tmp_path / "no-python-here"))
    cache = index.parent / "cache"
    cache.mkdir(parents=True)
    (cache / "000000010000000000000001").write_bytes(b"checked segment")
    data = tmp_path / "data"
    (data / "pg_wal").mkdir(parents=True)

    def run(name: str) -> subprocess.CompletedProcess[str]:
        command = as_postgres_runs_it(recovery.restore_command, name)
        return subprocess.run(["/bin/sh", "-c", command], cwd=data, capture_output=True, text=True, check=False)

    cached = run("000000010000000000000001")
    assert cached.returncode == 0, cached.stderr
    assert (data / "pg_wal" / "RECOVERYXLOG").read_bytes() == b"checked segment"
    assert list(cache.iterdir()) == []
    assert sorted(p.name for p in (data / "pg_wal").iterdir()) == ["RECOVERYXLOG"]
    other = run("000000010000000000000002")
    assert other.returncode == 127  # it went to wal-fetch (here an interpreter that does not exist)
    assert "no-python-here" in other.stderr
