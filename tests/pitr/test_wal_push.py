"""``backup-agent wal-push`` as a process against a moto server: what it stores, how a retry of the same
file succeeds without a second object, how a different file under an archived name is refused, how a
kill in the middle of the PutObject loses and duplicates nothing, and how a refused event stays owed."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket

import pytest
import zstandard

from tests.pitr.s3_proxy import stalling_proxy
from tests.pitr.wal_world import AGENT, TARGET, WalWorld, fake_wal_dir, mark_done, wal_world_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_wal_file_is_stored_compressed_encrypted_under_its_key_with_its_checksums(wal_world: WalWorld) -> None:
    [path] = fake_wal_dir(wal_world.root, 1)

    done = wal_world.agent("wal-push", "--target", TARGET, str(path))

    assert done.returncode == 0, done.stderr
    head = wal_world.head(path.name)
    stored = wal_world.stored(path.name)
    assert wal_world.archived_names() == [path.name]
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == wal_world.kms_key_arn
    assert head["ContentType"] == "application/zstd"
    assert head["Metadata"] == {
        "wal-file": path.name,
        "sha256": sha(stored),
        "raw-sha256": sha(path.read_bytes()),
        "bytes-in": str(path.stat().st_size),
        "compression": "zstd-1",
    }
    assert wal_world.raw(path.name) == path.read_bytes()
    assert len(stored) < path.stat().st_size // 4
    [event] = wal_world.wal_events()
    assert event["file"] == path.name
    assert event["key"] == f"agents/{AGENT}/{TARGET}/wal/{path.name}.zst"
    assert (event["sha256"], event["bytes_stored"], event["bytes_in"]) == (sha(stored), len(stored), 16 << 20)
    assert wal_world.journal(path.name)["state"] == "stored"
    assert wal_world.owed() == []


def test_the_checksum_s3_verifies_is_the_stored_bytes_sha256(wal_world: WalWorld) -> None:
    [path] = fake_wal_dir(wal_world.root, 1)
    assert wal_world.agent("wal-push", "--target", TARGET, str(path)).returncode == 0

    got = wal_world.s3.get_object(Bucket=wal_world.bucket, Key=wal_world.key(path.name), ChecksumMode="ENABLED")

    body = got["Body"].read()
    assert got.get("ChecksumSHA256") == base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_the_same_file_twice_succeeds_and_stores_one_object_and_one_event(wal_world: WalWorld) -> None:
    [path] = fake_wal_dir(wal_world.root, 1)

    first = wal_world.agent("wal-push", "--target", TARGET, str(path))
    again = wal_world.agent("wal-push", "--target", TARGET, str(path))

    assert (first.returncode, again.returncode) == (0, 0), again.stderr
    assert "already archived" in again.stderr
    assert wal_world.versions(path.name) == 1
    assert [e["file"] for e in wal_world.wal_events()] == [path.name]


def test_different_bytes_under_an_archived_name_fail_naming_the_file_and_the_fix(wal_world: WalWorld) -> None:
    [path] = fake_wal_dir(wal_world.root, 1)
    assert wal_world.agent("wal-push", "--target", TARGET, str(path)).returncode == 0
    original = path.read_bytes()
    path.write_bytes(b"another server's WAL".ljust(len(original), b"\0"))

    done = wal_world.agent("wal-push", "--target", TARGET, str(path))

    assert done.returncode == 1
    assert f"{path.name} NOT archived" in done.stderr
    assert "different contents" in done.stderr
    assert "Fix:" in done.stderr
    assert wal_world.versions(path.name) == 1
    assert wal_world.raw(path.name) == original


def test_a_name_the_archive_holds_from_elsewhere_is_refused_and_every_retry_refuses(wal_world: WalWorld) -> None:
    [path] = fake_wal_dir(wal_world.root, 1)
    elsewhere = zstandard.ZstdCompressor().compress(b"a restored copy's segment")
    wal_world.s3.put_object(Bucket=wal_world.bucket, Key=wal_world.key(path.name), Body=elsewhere)

    first = wal_world.agent("wal-push", "--target", TARGET, str(path))
    retry = wal_world.agent("wal-push", "--target", TARGET, str(path))

    for done in (first, retry):
        assert done.returncode == 1
        assert "this host never archived it" in done.stderr
        assert "Fix: point the other server's archive_command at its own target" in done.stderr
    assert wal_world.versions(path.name) == 1
    assert wal_world.stored(path.name) == elsewhere
    assert wal_world.wal_events() == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_push_killed_mid_put_then_retried_stores_exactly_the_file_once(wal_world: WalWorld, when: str) -> None:
    """``before``: killed before S3 had the request; ``after``: S3 stored it, the agent never heard."""
    [path] = fake_wal_dir(wal_world.root, 1)
    with stalling_proxy(wal_world.endpoint) as proxy:
        hold = proxy.hold(path.name, when)  # type: ignore[arg-type]
        process = wal_world.start_agent("wal-push", "--target", TARGET, str(path), AWS_ENDPOINT_URL_S3=proxy.url)
        assert hold.reached.wait(60), process.communicate(timeout=5)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert wal_world.journal(path.name)["state"] == "pending"
        assert wal_world.versions(path.name) == (1 if when == "after" else 0)

        retry = wal_world.agent("wal-push", "--target", TARGET, str(path), AWS_ENDPOINT_URL_S3=proxy.url)

    assert retry.returncode == 0, retry.stderr
    assert wal_world.versions(path.name) == 1
    assert wal_world.raw(path.name) == path.read_bytes()
    assert wal_world.journal(path.name)["state"] == "stored"
    [event] = wal_world.wal_events()
    assert event["sha256"] == sha(wal_world.stored(path.name))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_bus_that_refuses_leaves_the_file_archived_and_its_event_owed_until_the_next_push(
    wal_world: WalWorld,
) -> None:
    first, second = fake_wal_dir(wal_world.root, 2, ready=False)
    no_bus = f"http://127.0.0.1:{_closed_port()}"

    done = wal_world.agent("wal-push", "--target", TARGET, str(first), AWS_ENDPOINT_URL_EVENTBRIDGE=no_bus)

    assert done.returncode == 0, done.stderr
    assert wal_world.versions(first.name) == 1
    assert "stay owed" in done.stderr
    assert wal_world.owed() == [first.name]
    assert wal_world.wal_events() == []

    assert wal_world.agent("wal-push", "--target", TARGET, str(second)).returncode == 0
    assert sorted(e["file"] for e in wal_world.wal_events()) == [first.name, second.name]
    assert wal_world.owed() == []


def test_backup_agent_run_resends_owed_wal_events_when_it_starts(wal_world: WalWorld) -> None:
    [path] = fake_wal_dir(wal_world.root, 1, ready=False)
    no_bus = f"http://127.0.0.1:{_closed_port()}"
    assert (
        wal_world.agent("wal-push", "--target", TARGET, str(path), AWS_ENDPOINT_URL_EVENTBRIDGE=no_bus).returncode == 0
    )
    assert wal_world.owed() == [path.name]

    run = wal_world.agent("run", "--once")

    assert run.returncode == 0, run.stderr
    assert [e["file"] for e in wal_world.wal_events()] == [path.name]
    assert wal_world.owed() == []


def test_files_marked_ready_are_pushed_ahead_and_marked_done_and_a_call_for_one_only_confirms(
    wal_world: WalWorld,
) -> None:
    paths = fake_wal_dir(wal_world.root, 4)
    status = paths[0].parent / "archive_status"

    first = wal_world.agent("wal-push", "--target", TARGET, str(paths[0]))

    assert first.returncode == 0, first.stderr
    assert wal_world.archived_names() == [p.name for p in paths]
    assert sorted(e["file"] for e in wal_world.wal_events()) == [p.name for p in paths]
    assert (
        sorted(p.name for p in status.iterdir())
        == [
            f"{paths[0].name}.ready",  # PostgreSQL marks the file it asked for done itself
            *(f"{p.name}.done" for p in paths[1:-1]),  # pushed ahead: PostgreSQL skips them
            f"{paths[-1].name}.ready",  # the newest: its own call confirms it (and pg_stat_archiver names it)
        ]
    )
    for path in paths[1:]:  # a call for one all the same (after a crash before the rename): it only confirms
        later = wal_world.agent("wal-push", "--target", TARGET, str(path))
        assert later.returncode == 0, later.stderr
        assert "already archived" in later.stderr
        assert wal_world.versions(path.name) == 1
    assert len(wal_world.wal_events()) == 4  # each event was sent once


def test_a_push_ahead_is_bounded_by_parallel(wal_world: WalWorld) -> None:
    paths = fake_wal_dir(wal_world.root, 6)

    done = wal_world.agent("wal-push", "--parallel", "3", "--target", TARGET, str(paths[0]))

    assert done.returncode == 0, done.stderr
    assert wal_world.archived_names() == [p.name for p in paths[:3]]
    mark_done(paths[0])
    assert wal_world.agent("wal-push", "--parallel", "1", "--target", TARGET, str(paths[3])).returncode == 0
    assert wal_world.archived_names() == [p.name for p in paths[:4]]


def test_a_target_that_is_not_physical_or_unknown_is_a_config_error_naming_the_fix(wal_world: WalWorld) -> None:
    [path] = fake_wal_dir(wal_world.root, 1)
    wal_world.targets["app"] = {"engine": "command", "dump_command": ["true"], "restore_command": ["true"]}
    wal_world.write_config()

    unknown = wal_world.agent("wal-push", "--target", "nope", str(path))
    logical = wal_world.agent("wal-push", "--target", "app", str(path))
    missing = wal_world.agent("wal-push", "--target", TARGET, str(path.parent / "000000010000000000000099"))

    assert unknown.returncode == 2
    assert "Fix: pass the PITR target's name" in unknown.stderr
    assert logical.returncode == 2
    assert "postgresql-physical targets only" in logical.stderr
    assert missing.returncode == 1
    assert "no such WAL file" in missing.stderr
    assert wal_world.archived_names() == []
    assert wal_world.wal_events() == []


def test_a_large_segment_spills_to_disk_and_is_stored_whole(wal_world: WalWorld) -> None:
    """initdb --wal-segsize 64: an incompressible 64 MiB segment is compressed into an unnamed temporary
    file, not memory, and stored byte for byte."""
    wal = wal_world.root / "pg_wal"
    (wal / "archive_status").mkdir(parents=True)
    path = wal / "000000010000000000000004"
    path.write_bytes(os.urandom(64 << 20))

    done = wal_world.agent("wal-push", "--target", TARGET, str(path))

    assert done.returncode == 0, done.stderr
    assert sha(wal_world.raw(path.name)) == sha(path.read_bytes())
    journal_dir = wal_world.state_dir / "wal" / TARGET
    assert sorted(p.name for p in journal_dir.iterdir()) == ["journal", "owed", "owed.lock"]
