"""Point-in-time restores through the ``postgresql-physical`` engine against real clusters: a base backup
plus archived WAL (a plain ``cp`` archive here; wal-push/wal-fetch are proven in their own tests) is
restored to a chosen second, to the end of the archive, or refused with the reason and its fix."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_agent.engines import PostgresPhysicalConfig, build_engine, pg_extract
from backup_agent.engines.base import EngineError, RecoveringEngine, Recovery
from backup_agent.engines.pg_server import Server
from backup_agent.engines.postgresql_physical import PostgresPhysicalEngine
from tests.pitr.cluster import Cluster, free_port, owned_dir, running_cluster, server_user
from tests.pitr.test_base_backup import source_engine, take_base_backup

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@dataclass
class History:
    """A source cluster's base backup, then one row per commit at times a second or more apart."""

    source: Cluster
    archive: Path
    backup: bytes
    facts: dict[str, object]
    commits: dict[int, datetime] = field(default_factory=dict)  # row id -> its transaction's commit time


def commit_row(cluster: Cluster, row: int) -> datetime:
    cluster.sql(f"INSERT INTO orders VALUES ({row}, 'row {row}')")
    stamp = cluster.sql(f"SELECT pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC' FROM orders WHERE id = {row}")
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def archive_everything(cluster: Cluster) -> None:
    """Switch to a new segment and wait until the finished one is archived."""
    finished = cluster.sql("SELECT pg_walfile_name(pg_switch_wal())")
    cluster.wait_for("SELECT last_archived_wal FROM pg_stat_archiver", finished, timeout=30)


@pytest.fixture(scope="module")
def history(cluster_support: None) -> Iterator[History]:
    archive = owned_dir("pitr-archive-")
    try:
        with running_cluster(
            archive_command=f"cp %p {archive}/%f", settings={"track_commit_timestamp": "on"}
        ) as source:
            source.sql("CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (0, 'before')")
            data, validator = take_base_backup(source_engine(source))
            found = History(source, archive, data, validator.finish())
            for row in (1, 2, 3):
                time.sleep(1.1)
                found.commits[row] = commit_row(source, row)
            archive_everything(source)
            yield found
    finally:
        shutil.rmtree(archive, ignore_errors=True)


@pytest.fixture
def destination(cluster_support: None) -> Iterator[PostgresPhysicalEngine]:
    """A clone destination: a data directory that does not exist yet, on a free port."""
    root = owned_dir("pitr-restore-")
    config = PostgresPhysicalConfig(
        engine="postgresql-physical", data_directory=root / "data", port=free_port(), server_user=server_user()
    )
    engine = build_engine("orders-pitr-clone", config, lambda _ref: "unused")
    assert isinstance(engine, PostgresPhysicalEngine)
    try:
        yield engine
    finally:
        if (root / "data").exists():
            engine.drop_restored()
        shutil.rmtree(root, ignore_errors=True)


def restored(engine: PostgresPhysicalEngine) -> Cluster:
    data = engine.config.data_directory
    assert data is not None
    return Cluster(data.parent, engine.config.port, Path(str(engine.config.bin_dir or "/usr/lib/postgresql/15/bin")))


def recovery(history: History, target: datetime | None) -> Recovery:
    return Recovery(restore_command=f"cp {history.archive}/%f %p", target_time=target)


def test_the_engine_restores_with_wal(destination: PostgresPhysicalEngine) -> None:
    assert isinstance(destination, RecoveringEngine)


def test_a_restore_to_a_time_between_t2_and_t3_finds_exactly_the_rows_up_to_t2(
    history: History, destination: PostgresPhysicalEngine
) -> None:
    target = history.commits[2] + (history.commits[3] - history.commits[2]) / 2

    report = destination.restore_with_wal(io.BytesIO(history.backup), mode="clone", recovery=recovery(history, target))

    clone = restored(destination)
    assert clone.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders") == "0,1,2"
    reached = datetime.fromisoformat(str(report.verification["reached_at"]))
    assert history.commits[2] <= reached <= target
    assert reached == history.commits[2]  # the last transaction replayed is t2's
    assert report.verification["recovery_target_time"] == target.isoformat()
    assert report.verification["system_identifier"] == history.facts["system_identifier"]
    assert report.verification["timeline"] == 2  # promoted: a new timeline
    assert report.verification["recovery"] == "paused at the target, then promoted"
    assert report.verification["port"] == destination.config.port
    assert "postgres" in report.verification["databases"]  # type: ignore[operator]


def test_a_restored_clone_accepts_writes_and_never_archives_into_its_source(
    history: History, destination: PostgresPhysicalEngine
) -> None:
    target = history.commits[1] + timedelta(milliseconds=300)
    destination.restore_with_wal(io.BytesIO(history.backup), mode="drill", recovery=recovery(history, target))

    clone = restored(destination)
    clone.sql("INSERT INTO orders VALUES (99, 'written on the clone')")
    assert clone.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders") == "0,1,99"
    assert clone.sql("SHOW archive_mode") == "off"
    assert clone.sql("SHOW restore_command") == ""  # recovery-only settings are gone again
    assert not (clone.data / "recovery.signal").exists()
    assert (clone.data / "pg_hba.conf").read_text() == (history.source.data / "pg_hba.conf").read_text()


def test_without_a_target_every_archived_wal_is_replayed(history: History, destination: PostgresPhysicalEngine) -> None:
    report = destination.restore_with_wal(io.BytesIO(history.backup), mode="clone", recovery=recovery(history, None))

    assert restored(destination).sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders") == "0,1,2,3"
    assert report.verification["recovery"] == "replayed all archived WAL"
    assert report.verification["recovery_target_time"] is None
    assert datetime.fromisoformat(str(report.verification["reached_at"])) == history.commits[3]


def test_an_immediate_target_stops_at_the_base_backups_consistent_end_though_later_wal_is_there(
    history: History, destination: PostgresPhysicalEngine
) -> None:
    stop = Recovery(restore_command=f"cp {history.archive}/%f %p", target="immediate")
    report = destination.restore_with_wal(io.BytesIO(history.backup), mode="clone", recovery=stop)

    assert restored(destination).sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders") == "0"
    assert report.verification["recovery"] == "paused at the target, then promoted"


def test_a_target_before_the_base_backup_is_refused_and_leaves_nothing(
    history: History, destination: PostgresPhysicalEngine
) -> None:
    before = datetime.fromisoformat(str(history.facts["start_time"])) - timedelta(seconds=5)

    with pytest.raises(EngineError, match="before the base backup began") as refused:
        destination.restore_with_wal(io.BytesIO(history.backup), mode="clone", recovery=recovery(history, before))

    assert "Fix:" in str(refused.value)
    assert not destination.config.data_directory.exists()  # type: ignore[union-attr]


def test_a_target_the_archive_does_not_reach_fails_with_the_servers_reason(
    history: History, destination: PostgresPhysicalEngine
) -> None:
    later = history.commits[3] + timedelta(hours=1)

    with pytest.raises(EngineError, match="recovery ended before configured recovery target was reached") as failed:
        destination.restore_with_wal(io.BytesIO(history.backup), mode="clone", recovery=recovery(history, later))

    assert failed.value.stage == "restore"
    assert not destination.config.data_directory.exists()  # type: ignore[union-attr]


def test_an_in_place_restore_is_refused_naming_the_fix(history: History, destination: PostgresPhysicalEngine) -> None:
    with pytest.raises(EngineError, match="restore to a clone destination and switch over"):
        destination.restore_with_wal(io.BytesIO(history.backup), mode="in-place", recovery=recovery(history, None))


def test_a_plain_restore_says_a_physical_backup_needs_its_wal(destination: PostgresPhysicalEngine) -> None:
    with pytest.raises(EngineError, match="restored with its WAL"):
        destination.restore(io.BytesIO(b""), mode="clone")


def test_a_data_directory_that_holds_files_is_refused(history: History, destination: PostgresPhysicalEngine) -> None:
    data = destination.config.data_directory
    assert data is not None
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")

    with pytest.raises(EngineError, match="exists and is not empty; refusing to restore over it"):
        destination.restore_with_wal(io.BytesIO(history.backup), mode="clone", recovery=recovery(history, None))

    assert (data / "PG_VERSION").read_text() == "15\n"


def test_drop_restored_stops_the_clone_and_removes_its_data_directory(
    history: History, destination: PostgresPhysicalEngine
) -> None:
    destination.restore_with_wal(io.BytesIO(history.backup), mode="drill", recovery=recovery(history, None))
    clone = restored(destination)
    assert clone.running()

    done = destination.drop_restored()

    assert "stopped the restored server" in done
    assert not clone.data.exists()
    with pytest.raises(RuntimeError):
        clone.sql("SELECT 1")


def test_a_restore_gives_the_clone_the_settings_its_source_recorded_for_hot_standby(history: History) -> None:
    config = PostgresPhysicalConfig(engine="postgresql-physical", data_directory=history.source.data)
    server = Server(config, history.source.data, history.source.bin_dir, pg_extract.server_user(server_user()))

    recorded = server.recorded_settings()

    assert recorded["max_connections"] == history.source.sql("SHOW max_connections")
    assert recorded["max_wal_senders"] == "4"
    assert set(recorded) == {
        "max_connections",
        "max_worker_processes",
        "max_wal_senders",
        "max_prepared_transactions",
        "max_locks_per_transaction",
    }


def test_a_corrupt_base_backup_is_refused_while_unpacking_and_leaves_nothing(
    history: History, destination: PostgresPhysicalEngine
) -> None:
    damaged = bytearray(history.backup)
    damaged[len(damaged) // 2] ^= 0xFF

    with pytest.raises(EngineError, match="the base backup is not valid") as refused:
        destination.restore_with_wal(io.BytesIO(bytes(damaged)), mode="clone", recovery=recovery(history, None))

    assert "was removed again: nothing was created" in str(refused.value)
    assert not destination.config.data_directory.exists()  # type: ignore[union-attr]


def test_check_of_a_destination_finds_its_binaries_and_an_empty_directory(destination: PostgresPhysicalEngine) -> None:
    assert destination.check() == []

    data = destination.config.data_directory
    assert data is not None
    data.mkdir()
    (data / "old").write_text("left over")

    [problem] = destination.check()
    assert "is not empty" in problem
    assert "Fix:" in problem
