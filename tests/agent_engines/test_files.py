"""Files engine: tar streams with excludes, header-checksum validation, clone and atomic in-place restores."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from backup_agent.engines import build_engine
from backup_agent.engines.base import EngineError, InvalidDumpError
from backup_agent.engines.config import FilesConfig
from backup_agent.engines.files import FilesEngine, _tar_exit

from .conftest import run_dump, validate

pytestmark = pytest.mark.integration


def engine_for(paths: list[Path], excludes: list[str] | None = None, restore_dir: Path | None = None) -> FilesEngine:
    config = FilesConfig(engine="files", paths=paths, excludes=excludes or [], restore_dir=restore_dir)
    engine = build_engine("files-test", config, lambda ref: "unused")
    assert isinstance(engine, FilesEngine)
    return engine


def tree(root: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Relative path -> (mode, content or link target) for everything below root."""
    out: dict[str, tuple[int, bytes | str | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = path.relative_to(root).as_posix()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = (stat.S_IMODE(st.st_mode), os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            out[rel] = (stat.S_IMODE(st.st_mode), path.read_bytes())
        else:
            out[rel] = (stat.S_IMODE(st.st_mode), None)
    return out


@pytest.fixture
def data_dirs(tmp_path: Path) -> tuple[Path, Path]:
    uploads = tmp_path / "srv" / "uploads"
    (uploads / "deep" / "er").mkdir(parents=True)
    (uploads / "a.txt").write_text("hello ünïcode 🐎\n")
    (uploads / "deep" / "er" / "blob.bin").write_bytes(os.urandom(200_000))
    (uploads / "empty").write_bytes(b"")
    (uploads / "secret.key").write_text("k")
    (uploads / "secret.key").chmod(0o600)
    (uploads / "run.sh").write_text("#!/bin/sh\n")
    (uploads / "run.sh").chmod(0o750)
    (uploads / "deep").chmod(0o711)
    (uploads / "link").symlink_to("a.txt")
    (uploads / "cache.tmp").write_text("skip me")
    (uploads / "deep" / "x.tmp").write_text("skip me too")
    name = "with space & 'quote'"
    vectors = tmp_path / "srv" / name
    vectors.mkdir()
    (vectors / "index.faiss").write_bytes(b"\x00" * 5000)
    return uploads, vectors


def test_dump_with_excludes_validates_and_clone_restore_equals_the_tree(data_dirs, tmp_path: Path) -> None:
    uploads, vectors = data_dirs
    restore_dir = tmp_path / "clone"
    engine = engine_for([uploads, vectors], excludes=["*.tmp"], restore_dir=restore_dir)

    result = run_dump(engine)

    assert result.outcome.exit_code == 0, result.outcome.stderr_tail
    assert result.error is None
    assert result.facts is not None
    assert result.facts["files"] == 6

    report = engine.restore(io.BytesIO(result.data), mode="clone")

    expected = {k: v for k, v in tree(uploads).items() if not k.endswith(".tmp")}
    assert tree(restore_dir / uploads.relative_to("/")) == expected
    assert tree(restore_dir / vectors.relative_to("/")) == tree(vectors)
    assert report.verification["files"] == 7  # non-directory entries on disk, the symlink included
    assert report.verification["bytes"] == len(result.data)
    assert [p.name for p in restore_dir.parent.iterdir() if p.name.startswith(".clone")] == []


def test_in_place_restore_swaps_back_the_snapshot_and_leaves_no_staging(data_dirs, tmp_path: Path) -> None:
    uploads, vectors = data_dirs
    engine = engine_for([uploads, vectors])
    before = (tree(uploads), tree(vectors))
    dump = run_dump(engine)
    (uploads / "a.txt").write_text("changed")
    (uploads / "new-file").write_text("added later")
    (uploads / "deep" / "er" / "blob.bin").unlink()
    (vectors / "index.faiss").chmod(0o777)

    report = engine.restore(io.BytesIO(dump.data), mode="in-place")

    assert (tree(uploads), tree(vectors)) == before
    assert sorted(report.verification["paths"]) == sorted([str(uploads), str(vectors)])
    assert sorted(p.name for p in uploads.parent.iterdir()) == sorted([uploads.name, vectors.name])


def test_in_place_restore_of_a_truncated_stream_leaves_every_path_untouched(data_dirs) -> None:
    uploads, vectors = data_dirs
    engine = engine_for([uploads, vectors])
    dump = run_dump(engine).data
    (uploads / "a.txt").write_text("changed after backup")
    current = (tree(uploads), tree(vectors))

    with pytest.raises(EngineError):
        engine.restore(io.BytesIO(dump[: len(dump) // 2]), mode="in-place")

    assert (tree(uploads), tree(vectors)) == current
    assert sorted(p.name for p in uploads.parent.iterdir()) == sorted([uploads.name, vectors.name])


def test_clone_refuses_a_non_empty_restore_dir(data_dirs, tmp_path: Path) -> None:
    uploads, _ = data_dirs
    restore_dir = tmp_path / "occupied"
    restore_dir.mkdir()
    (restore_dir / "keep").write_text("mine")
    engine = engine_for([uploads], restore_dir=restore_dir)
    dump = run_dump(engine).data

    with pytest.raises(EngineError, match="not an empty directory"):
        engine.restore(io.BytesIO(dump), mode="clone")
    assert (restore_dir / "keep").read_text() == "mine"


def test_validator_rejects_truncated_empty_and_garbage_streams(data_dirs) -> None:
    uploads, _ = data_dirs
    engine = engine_for([uploads])
    dump = run_dump(engine).data
    end_marker = dump.rstrip(b"\0")
    content_end = len(end_marker) + (-len(end_marker) % 512)

    for cut in (0, 100, 511, 512, 1000, len(dump) // 3, len(dump) // 2, content_end, content_end + 512):
        with pytest.raises(InvalidDumpError):
            validate(engine, dump[:cut], step=777)
    corrupted = bytearray(dump)
    corrupted[0] ^= 0x01  # first header's name changes: its checksum no longer matches
    with pytest.raises(InvalidDumpError, match="checksum"):
        validate(engine, bytes(corrupted))
    with pytest.raises(InvalidDumpError):
        validate(engine, os.urandom(10_240))
    assert validate(engine, dump[: content_end + 1024])["files"] >= 5


def test_validator_accepts_archives_from_other_writers(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"{'long-name-' * 20}{i}")
            payload = os.urandom(1000 + i)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))

    facts = validate(engine_for([tmp_path]), buf.getvalue())

    assert facts["files"] == 3


def test_missing_path_fails_the_dump(tmp_path: Path) -> None:
    engine = engine_for([tmp_path / "does-not-exist"])

    result = run_dump(engine)

    assert result.outcome.exit_code == 2
    assert "does-not-exist" in result.outcome.stderr_tail
    assert engine.check()


def test_tar_exit_one_counts_as_success_only_for_files_changed_while_read() -> None:
    changed = b"tar: srv/logs/app.log: file changed as we read it\n"

    assert _tar_exit(1, changed) == 0
    assert _tar_exit(1, changed + b"tar: srv/x: Cannot open: Permission denied\n") == 1
    assert _tar_exit(1, b"") == 1
    assert _tar_exit(2, changed) == 2


def test_drop_restored_removes_only_the_restore_dir(data_dirs, tmp_path: Path) -> None:
    uploads, _ = data_dirs
    restore_dir = tmp_path / "drill"
    engine = engine_for([uploads], restore_dir=restore_dir)
    engine.restore(io.BytesIO(run_dump(engine).data), mode="drill")

    engine.drop_restored()

    assert not restore_dir.exists()
    assert (uploads / "a.txt").exists()
