"""A real PostgreSQL 15 cluster whose archive_command is the real ``backup-agent wal-push``, against a moto
server: every completed WAL file lands at its key, encrypted, with the bytes the server wrote; and a push
killed in the middle of its PutObject is retried by PostgreSQL itself, ending with exactly one object."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.pitr.cluster import Cluster, running_cluster
from tests.pitr.s3_proxy import stalling_proxy
from tests.pitr.wal_world import WalWorld, wal_world_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def write_and_switch(cluster: Cluster, rounds: int) -> list[str]:
    """Write rows and complete the segment ``rounds`` times; the names of the segments completed."""
    cluster.sql("CREATE TABLE IF NOT EXISTS t (i int, note text)")
    names = []
    for _ in range(rounds):
        cluster.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g")
        names.append(cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())"))
        cluster.sql("SELECT pg_switch_wal()")
    return names


def archiver(cluster: Cluster) -> tuple[str, int]:
    last, failed = cluster.sql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver").split("|")
    return last, int(failed)


def wait_archived(cluster: Cluster, name: str, timeout: float = 90) -> None:
    """Until PostgreSQL counts ``name`` archived: by its own call, or marked done by a push ahead of it."""
    done = cluster.data / "pg_wal" / "archive_status" / f"{name}.done"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last, _ = archiver(cluster)
        if (last and last >= name) or done.exists():
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} not archived within {timeout}s; server log:\n{cluster.server_log()[-3000:]}")


def wal_push_pids(config: Path) -> list[int]:
    """The running ``wal-push`` processes of this world (found by their own config path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config).encode() in argv and b"wal-push" in argv and b"python" in argv[0]:
            pids.append(int(entry.name))
    return pids


def test_a_cluster_archives_every_completed_wal_file_through_wal_push(
    cluster_support: None, wal_world: WalWorld
) -> None:
    with running_cluster(archive_command=wal_world.archive_command()) as cluster:
        names = write_and_switch(cluster, 3)
        wait_archived(cluster, names[-1])

        assert archiver(cluster)[1] == 0
        assert list((cluster.data / "pg_wal" / "archive_status").glob("*.ready")) == []
        assert wal_world.archived_names() == names
        for name in names:
            head = wal_world.head(name)
            assert head["ServerSideEncryption"] == "aws:kms"
            assert head["SSEKMSKeyId"] == wal_world.kms_key_arn
            on_server = cluster.data / "pg_wal" / name
            if on_server.exists():  # not yet recycled by a checkpoint
                assert wal_world.raw(name) == on_server.read_bytes()
        assert sorted(e["file"] for e in wal_world.wal_events()) == names
        assert wal_world.owed() == []


def test_postgres_retries_a_push_killed_mid_put_and_the_archive_ends_with_exactly_one_right_object(
    cluster_support: None, wal_world: WalWorld
) -> None:
    with stalling_proxy(wal_world.endpoint) as proxy:
        command = wal_world.archive_command(AWS_ENDPOINT_URL_S3=proxy.url)
        with running_cluster(archive_command=command) as cluster:
            first = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
            hold = proxy.hold(first, "after")  # S3 stores it; the agent is killed before it hears so
            names = write_and_switch(cluster, 1)
            assert names == [first]
            assert hold.reached.wait(60), cluster.server_log()[-3000:]
            [pid] = wal_push_pids(wal_world.config_path)
            os.kill(pid, signal.SIGKILL)
            assert wal_world.journal(first)["state"] == "pending"

            names += write_and_switch(cluster, 2)
            wait_archived(cluster, names[-1])

            log = cluster.server_log()
            killed = ("terminated by signal 9", "failed with exit code 137")  # the agent itself, or sh saying so
            assert any(said in log for said in killed), log[-4000:]  # PostgreSQL saw the kill, and retried
            assert wal_world.archived_names() == names
            assert [wal_world.versions(name) for name in names] == [1, 1, 1]
            assert hold.forwarded
            on_server = cluster.data / "pg_wal" / first
            if on_server.exists():
                assert wal_world.raw(first) == on_server.read_bytes()
            assert wal_world.head(first)["Metadata"]["raw-sha256"] == wal_world.journal(first)["raw_sha256"]
            assert sorted(e["file"] for e in wal_world.wal_events()) == names  # one event each
