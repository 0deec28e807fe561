"""Point-in-time recovery at agent level, every part real except AWS (a moto server): a PostgreSQL 15 cluster
archives its WAL through ``backup-agent wal-push``; a base backup goes through the agent's own pipeline
(``BackupRun``: pg_basebackup, zstd, SHA-256, SSE-KMS multipart); rows are committed at t1 < t2 < t3; the
WAL index lists the archived files with presigned URLs, as the coordinator writes it; and ``RestoreRun``
restores a clone to a second between t2 and t3, its server fetching every WAL file through
``backup-agent wal-fetch``. The clone holds exactly the rows up to t2, and Restore Succeeded says so."""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_agent.config import AgentConfig, parse_config
from backup_agent.engines import build_engine
from backup_agent.events import RecordingSink
from backup_agent.pipeline import BackupRun, RunOutcome
from backup_agent.restore import RestoreOutcome, RestoreRun
from backup_contracts.events import BackupSucceeded, RestoreFailed, RestoreSucceeded
from backup_contracts.jobs import Job, RestoreSource, WalReplay
from backup_contracts.naming import agent_prefix, restore_facts
from tests.pitr.cluster import Cluster, free_port, owned_dir, pg_bin_dir, running_cluster, server_user
from tests.pitr.wal_world import AGENT, TARGET, WalWorld, index_of, server_python, wal_world_fixture  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

CLONE = "orders-pitr-clone"


def no_secret(ref: object) -> str:
    raise AssertionError(f"no secrets here: {ref!r}")


def commit_row(cluster: Cluster, row: int) -> datetime:
    cluster.sql(f"INSERT INTO orders VALUES ({row}, 'row {row}')")
    stamp = cluster.sql(f"SELECT pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC' FROM orders WHERE id = {row}")
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def archive_all(cluster: Cluster) -> str:
    """Complete the current segment and wait until PostgreSQL counts it archived; its name."""
    finished = cluster.sql("SELECT pg_walfile_name(pg_switch_wal())")
    done = cluster.data / "pg_wal" / "archive_status" / f"{finished}.done"
    deadline = time.monotonic() + 60
    while not done.exists():
        assert time.monotonic() < deadline, cluster.server_log()[-3000:]
        time.sleep(0.2)
    return finished


def backup_job(world: WalWorld) -> Job:
    now = datetime.now(UTC)
    return Job(
        job_id=f"{TARGET}.{uuid.uuid4().hex[:10]}",
        kind="backup",
        agent=AGENT,
        target=TARGET,
        trigger="schedule",
        issued_at=now,
        deadline=now + timedelta(hours=1),
        bucket=world.bucket,
        key_prefix=agent_prefix(AGENT),
        retention_class="standard",
    )


def restore_job(world: WalWorld, backup: BackupSucceeded, manifest: dict[str, object], wal: WalReplay) -> Job:
    now = datetime.now(UTC)
    return Job(
        job_id="r-pitr-1",
        kind="restore",
        agent=AGENT,
        target=CLONE,
        trigger="user",
        issued_at=now,
        deadline=now + timedelta(hours=1),
        bucket=world.bucket,
        key_prefix=agent_prefix(AGENT),
        retention_class="standard",
        restore_id="r-pitr-1",
        destination=CLONE,
        mode="clone",
        source=RestoreSource(
            run_id=backup.run_id,
            target=TARGET,
            bucket=backup.bucket,
            key=backup.key,
            version_id=backup.version_id,
            sha256=backup.sha256,
            bytes_stored=backup.bytes_stored,
            engine=backup.engine,
            format=backup.format,
            compression=backup.compression,
            presigned_url=world.s3.generate_presigned_url(
                "get_object", Params={"Bucket": world.bucket, "Key": backup.key, "VersionId": backup.version_id}
            ),
            started_at=backup.started_at,
            manifest_facts=restore_facts(manifest),
            wal=wal,
        ),
    )


@pytest.fixture
def clone_root() -> Iterator[Path]:
    root = owned_dir("pitr-clone-")
    yield root
    bin_dir = pg_bin_dir()
    if bin_dir is not None and (root / "data").exists():
        Cluster(root, 0, bin_dir).stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class Prepared:
    """A source's base backup through the agent, rows at t1 < t2 < t3 after it, its archived WAL, the index."""

    config: AgentConfig
    backup: RunOutcome
    commits: dict[int, datetime]
    names: list[str]
    wal: WalReplay
    events: RecordingSink

    def restore(self, world: WalWorld) -> RestoreOutcome:
        config = self.config
        return RestoreRun(
            restore_job(world, self.backup.succeeded, self.backup.manifest, self.wal),
            config,
            engine_factory=lambda name: build_engine(name, config.targets[name], no_secret),
            events=self.events,
            s3=world.s3,
            spool_dir=world.root / "spool",
        ).execute()


def prepare(world: WalWorld, clone_root: Path, clone_port: int) -> Prepared:
    settings = {"track_commit_timestamp": "on"}
    with running_cluster(archive_command=world.archive_command(), settings=settings) as source:
        world.targets = {
            TARGET: {"engine": "postgresql-physical", "host": "127.0.0.1", "port": source.port, "user": "postgres"},
            CLONE: {
                "engine": "postgresql-physical",
                "data_directory": str(clone_root / "data"),
                "port": clone_port,
                "server_user": server_user(),
            },
        }
        world.write_config()
        config = parse_config(world.config_path.read_text())
        source.sql("CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (0, 'before')")
        engine = build_engine(TARGET, config.targets[TARGET], no_secret)
        events = RecordingSink()
        backup = BackupRun(backup_job(world), engine, config, s3=world.s3, events=events).execute()
        assert backup.ok, backup.event
        commits = {}
        for row in (1, 2, 3):
            time.sleep(1.1)
            commits[row] = commit_row(source, row)
        last = archive_all(source)
    # the WAL index the coordinator would write: every archived file from the base backup's first
    start = str(backup.manifest["validator"]["start_file"])
    names = [n for n in world.archived_names() if n >= start and not n.endswith((".backup", ".partial"))]
    assert names[-1] == last
    index = index_of(world, names).model_dump_json().encode()
    index_key = "restores/r-pitr-1/wal-index.json"
    world.s3.put_object(Bucket=world.bucket, Key=index_key, Body=index)
    wal = WalReplay(
        recovery_target="time",
        recovery_target_time=commits[2] + (commits[3] - commits[2]) / 2,
        index_url=world.presign(index_key),
        index_sha256=hashlib.sha256(index).hexdigest(),
        index_bytes=len(index),
        files=len(names),
        last_file=names[-1],
    )
    return Prepared(config, backup, commits, names, wal, events)


def test_a_clone_restored_to_a_second_between_t2_and_t3_holds_exactly_the_rows_up_to_t2(
    cluster_support: None, wal_world: WalWorld, clone_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the restored server (the postgres OS user) runs restore_command with this agent's interpreter
    monkeypatch.setattr(sys, "executable", str(server_python(wal_world.root)))
    clone_port = free_port()
    prepared = prepare(wal_world, clone_root, clone_port)

    outcome = prepared.restore(wal_world)

    assert isinstance(outcome.event, RestoreSucceeded), outcome.event
    clone = Cluster(clone_root, clone_port, pg_bin_dir() or Path("/usr/lib/postgresql/15/bin"))
    assert clone.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders") == "0,1,2"
    assert outcome.event.verification["recovery"] == "paused at the target, then promoted"  # rows 1, 2: from WAL
    checks = outcome.event.verification["checks"]
    assert datetime.fromisoformat(checks["reached_at"]) == prepared.commits[2]
    assert prepared.wal.recovery_target_time is not None
    assert checks["recovery_target_time"] == prepared.wal.recovery_target_time.isoformat()
    assert checks["system_identifier"] == str(prepared.backup.manifest["validator"]["system_identifier"])
    assert [type(e).__name__ for e in prepared.events.events] == [
        "BackupStarted",
        "BackupSucceeded",
        "RestoreStarted",
        "RestoreSucceeded",
    ]
    assert "archive_mode = off" in (clone_root / "data" / "postgresql.auto.conf").read_text()


def test_a_tampered_wal_file_fails_the_restore_instead_of_stopping_recovery_early(
    cluster_support: None, wal_world: WalWorld, clone_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(server_python(wal_world.root)))
    prepared = prepare(wal_world, clone_root, free_port())
    tampered = prepared.names[-1]  # holds the commits of t1..t3
    wal_world.s3.put_object(Bucket=wal_world.bucket, Key=wal_world.key(tampered), Body=b"not that segment")

    outcome = prepared.restore(wal_world)

    assert isinstance(outcome.event, RestoreFailed)
    assert outcome.event.stage == "restore"
    assert f'could not restore file "{tampered}" from archive' in outcome.event.error
    assert f"wal-fetch {tampered} refused" in outcome.event.stderr_tail  # the server's log says why
    assert not (clone_root / "data").exists() or not any((clone_root / "data").iterdir())
    assert "Restore Succeeded" not in [type(e).__name__ for e in prepared.events.events]
