"""``backup-agent wal-fetch`` as PostgreSQL's restore_command runs it: no agent config, no AWS credentials,
only the restore's WAL index and its presigned URLs. A listed file comes back byte for byte (the next ones
prefetched); an unlisted one is "not there" (exit 1); a changed, truncated or unreachable one is never
handed over (exit 200: PostgreSQL aborts the recovery instead of ending it early)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.pitr.wal_world import PYTHON, TARGET, WalWorld, fake_wal_dir, index_of, wal_world_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def archived(wal_world: WalWorld) -> tuple[list[Path], Path]:
    """Four segments archived by wal-push, and the WalIndex of them written where a restore writes it."""
    paths = fake_wal_dir(wal_world.root, 4)
    pushed = wal_world.agent("wal-push", "--target", TARGET, str(paths[0]))
    assert pushed.returncode == 0, pushed.stderr
    assert wal_world.archived_names() == [p.name for p in paths]
    index = wal_world.root / "restore" / "wal-index.json"
    index.parent.mkdir(mode=0o700)
    index.write_text(index_of(wal_world, [p.name for p in paths]).model_dump_json(), encoding="utf-8")
    return paths, index


def wal_fetch(world: WalWorld, index: Path, name: str, dest: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in world.env().items() if not k.startswith("AWS_")}  # presigned URLs only
    return subprocess.run(
        [PYTHON, "-m", "backup_agent.entry", "--text-logs", "wal-fetch", "--index", str(index), name, str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_listed_file_is_written_byte_for_byte_and_the_next_ones_come_from_the_prefetch(
    wal_world: WalWorld, archived: tuple[list[Path], Path], tmp_path: Path
) -> None:
    paths, index = archived
    dest = tmp_path / "RECOVERYXLOG"

    first = wal_fetch(wal_world, index, paths[0].name, dest)

    assert first.returncode == 0, first.stderr
    assert dest.read_bytes() == paths[0].read_bytes()
    assert sorted(p.name for p in (index.parent / "cache").iterdir()) == [p.name for p in paths[1:]]
    for path in paths:  # the archive is gone: what follows can only come from the prefetched cache
        wal_world.s3.delete_object(Bucket=wal_world.bucket, Key=wal_world.key(path.name))
    for path in paths[1:]:
        again = wal_fetch(wal_world, index, path.name, dest)
        assert again.returncode == 0, again.stderr
        assert dest.read_bytes() == path.read_bytes()
    assert list((index.parent / "cache").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RECOVERYXLOG"]  # no temporary file left


@pytest.mark.parametrize("name", ["000000010000000000000009", "00000002.history", "000000010000000000000001.partial"])
def test_a_name_the_index_does_not_list_exits_1_quietly(
    wal_world: WalWorld, archived: tuple[list[Path], Path], tmp_path: Path, name: str
) -> None:
    _, index = archived

    done = wal_fetch(wal_world, index, name, tmp_path / "RECOVERYXLOG")

    assert done.returncode == 1
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda body: body[:-1] + bytes([body[-1] ^ 1]), "SHA-256"),
        (lambda body: body[: len(body) // 2], "bytes, the archive recorded"),
    ],
    ids=["changed", "truncated"],
)
def test_a_changed_or_truncated_object_is_never_handed_to_postgres(
    wal_world: WalWorld, archived: tuple[list[Path], Path], tmp_path: Path, change: object, said: str
) -> None:
    paths, index = archived
    name = paths[0].name
    tampered = change(wal_world.stored(name))  # type: ignore[operator]
    wal_world.s3.put_object(Bucket=wal_world.bucket, Key=wal_world.key(name), Body=tampered)
    dest = tmp_path / "RECOVERYXLOG"

    done = wal_fetch(wal_world, index, name, dest)

    assert done.returncode == 200, done.stderr
    assert name in done.stderr
    assert said in done.stderr
    assert "refusing to hand it to PostgreSQL" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_file_whose_prefetch_failed_is_refused_when_asked_for_and_the_others_still_come(
    wal_world: WalWorld, archived: tuple[list[Path], Path], tmp_path: Path
) -> None:
    paths, index = archived
    wal_world.s3.put_object(Bucket=wal_world.bucket, Key=wal_world.key(paths[2].name), Body=b"not the segment")
    dest = tmp_path / "RECOVERYXLOG"

    assert wal_fetch(wal_world, index, paths[0].name, dest).returncode == 0
    assert not (index.parent / "cache" / paths[2].name).exists()
    assert wal_fetch(wal_world, index, paths[1].name, dest).returncode == 0
    refused = wal_fetch(wal_world, index, paths[2].name, dest)
    assert refused.returncode == 200
    assert dest.read_bytes() == paths[1].read_bytes()  # the last good file stays; nothing bad replaced it


def test_a_url_that_fails_aborts_the_recovery_without_logging_its_signature(
    wal_world: WalWorld, archived: tuple[list[Path], Path], tmp_path: Path
) -> None:
    paths, index = archived
    text = index.read_text().replace("Signature=", "Signature=0000")
    index.write_text(text)
    for path in paths:
        wal_world.s3.delete_object(Bucket=wal_world.bucket, Key=wal_world.key(path.name))

    done = wal_fetch(wal_world, index, paths[0].name, tmp_path / "RECOVERYXLOG")

    assert done.returncode == 200
    assert "HTTP 404" in done.stderr or "HTTP 403" in done.stderr
    assert "Signature" not in done.stderr
    assert "X-Amz-" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_index_aborts_the_recovery_naming_the_fix(wal_world: WalWorld, tmp_path: Path) -> None:
    done = wal_fetch(wal_world, tmp_path / "missing.json", "000000010000000000000001", tmp_path / "RECOVERYXLOG")

    assert done.returncode == 200
    assert "cannot read the WAL index" in done.stderr
    assert "Fix:" in done.stderr
