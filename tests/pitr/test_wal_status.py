"""The agent's heartbeat says where each PITR server's WAL stands (a real PG15 cluster archiving through
wal-push): the segment it writes now and pg_stat_archiver's last archived and failed files; a server that
cannot be asked is left out and the heartbeat still goes out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backup_agent.config import AgentConfig, parse_config
from backup_agent.consumer import Consumer
from backup_agent.engines import build_engine
from backup_agent.events import RecordingSink
from backup_agent.state import CompletedJobs
from backup_agent.wal.status import parse_status, pitr_sources
from backup_contracts.events import AgentHeartbeat
from tests.pitr.cluster import free_port, running_cluster
from tests.pitr.wal_world import TARGET, WalWorld, wal_world_fixture  # noqa: F401

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def no_secret(ref: object) -> str:
    raise AssertionError(f"no secrets here: {ref!r}")


def config_for(world: WalWorld, port: int) -> AgentConfig:
    world.targets = {
        TARGET: {"engine": "postgresql-physical", "host": "127.0.0.1", "port": port, "user": "postgres"},
        "orders-pitr-clone": {"engine": "postgresql-physical", "data_directory": "/srv/clone", "port": free_port()},
        "app": {"engine": "command", "dump_command": ["true"], "restore_command": ["true"]},
    }
    world.write_config()
    return parse_config(world.config_path.read_text())


def heartbeat(config: AgentConfig, factory: Any) -> AgentHeartbeat:
    sink = RecordingSink()
    consumer = Consumer(
        config,
        sqs=None,  # type: ignore[arg-type]
        s3=None,  # type: ignore[arg-type]
        events=sink,
        engine_factory=factory,
        completed=CompletedJobs(config.state_dir),
        clock=lambda: NOW,
    )
    consumer.send_heartbeat()
    [event] = sink.events
    assert isinstance(event, AgentHeartbeat)
    return event


def test_only_the_pitr_servers_this_host_archives_are_asked(wal_world: WalWorld) -> None:
    assert pitr_sources(config_for(wal_world, 5432)) == [TARGET]


def test_a_row_with_nothing_archived_or_failed_yet_says_none() -> None:
    status = parse_status(TARGET, "000000010000000000000001\t\t\t\t\n", NOW)

    assert status.current_file == "000000010000000000000001"
    assert (status.last_archived_file, status.last_archived_at, status.last_failed_file) == (None, None, None)


def test_the_heartbeat_carries_where_the_servers_wal_stands(cluster_support: None, wal_world: WalWorld) -> None:
    with running_cluster(archive_command=wal_world.archive_command()) as cluster:
        config = config_for(wal_world, cluster.port)
        finished = cluster.sql("SELECT pg_walfile_name(pg_switch_wal())")
        cluster.wait_for("SELECT last_archived_wal FROM pg_stat_archiver", finished, timeout=60)
        current = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")

        event = heartbeat(config, lambda name: build_engine(name, config.targets[name], no_secret))

    assert event.wal is not None
    [status] = event.wal
    assert status.target == TARGET
    assert status.current_file == current
    assert status.last_archived_file == finished
    assert status.last_archived_at is not None
    assert abs((datetime.now(UTC) - status.last_archived_at).total_seconds()) < 120
    assert status.last_failed_file is None
    assert status.checked_at == NOW


def test_a_server_that_cannot_be_asked_is_left_out_and_the_heartbeat_still_goes(wal_world: WalWorld) -> None:
    config = config_for(wal_world, free_port())  # nothing listens there

    event = heartbeat(config, lambda name: build_engine(name, config.targets[name], no_secret))

    assert event.wal == []


def test_a_host_without_pitr_targets_sends_no_wal_field(tmp_path: Path, wal_world: WalWorld) -> None:
    wal_world.targets = {"app": {"engine": "command", "dump_command": ["true"], "restore_command": ["true"]}}
    wal_world.write_config()
    config = parse_config(wal_world.config_path.read_text())

    assert heartbeat(config, lambda name: None).wal is None
