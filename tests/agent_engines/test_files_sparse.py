"""Files engine and sparse files: holes survive the backup and every restore mode; cut sparse archives are refused."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
from pathlib import Path

import pytest

from backup_agent.engines import build_engine
from backup_agent.engines.base import EngineError, InvalidDumpError
from backup_agent.engines.config import FilesConfig
from backup_agent.engines.files import FilesEngine

from .conftest import run_dump, validate

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
REGION = 64 * 1024


def engine_for(paths: list[Path], restore_dir: Path | None = None) -> FilesEngine:
    config = FilesConfig(engine="files", paths=paths, restore_dir=restore_dir)
    engine = build_engine("files-sparse", config, lambda ref: "unused")
    assert isinstance(engine, FilesEngine)
    return engine


def on_disk(path: Path) -> int:
    return path.stat().st_blocks * 512


def digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@pytest.fixture
def sparse_dir(tmp_path: Path) -> Path:
    """``tail-byte``: 20 MiB of hole then one byte (``truncate -s 20M f; printf x >> f``);
    ``regions``: 12 MiB with three 64 KiB data regions, ending in a hole; ``dense``: an ordinary file."""
    root = tmp_path / "srv" / "volumes"
    root.mkdir(parents=True)
    tail = root / "tail-byte"
    subprocess.run(["truncate", "-s", "20M", str(tail)], check=True)
    with tail.open("ab") as handle:
        handle.write(b"x")
    with (root / "regions").open("wb") as handle:
        for offset in (0, 5 * MiB, 9 * MiB):
            handle.seek(offset)
            handle.write(os.urandom(REGION))
        handle.truncate(12 * MiB)
    (root / "dense").write_bytes(os.urandom(100_000))
    if on_disk(tail) > 1 * MiB:
        pytest.fail(
            f"the filesystem of {tmp_path} does not keep holes (a 20 MiB sparse file takes {on_disk(tail)} bytes),"
            " so sparse restores cannot be proven here. Fix: run the tests with a temp dir on ext4, xfs, btrfs or"
            " tmpfs (pytest --basetemp=DIR)"
        )
    return root


def sparse_snapshot(root: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted(root.iterdir())}


def assert_sparse(root: Path) -> None:
    tail, regions = root / "tail-byte", root / "regions"
    assert tail.stat().st_size == 20 * MiB + 1
    assert on_disk(tail) <= 64 * 1024, on_disk(tail)  # one block of data, not 20 MiB
    assert regions.stat().st_size == 12 * MiB
    assert on_disk(regions) <= 3 * REGION + 3 * 64 * 1024, on_disk(regions)


def test_a_sparse_file_is_archived_as_its_data_and_restored_sparse_by_a_clone(sparse_dir: Path, tmp_path: Path) -> None:
    restore_dir = tmp_path / "clone"
    engine = engine_for([sparse_dir], restore_dir=restore_dir)
    before = sparse_snapshot(sparse_dir)

    result = run_dump(engine)
    report = engine.restore(io.BytesIO(result.data), mode="clone")

    assert result.outcome.exit_code == 0, result.outcome.stderr_tail
    assert result.error is None
    assert len(result.data) < 2 * MiB  # the holes are not in the stream
    assert result.facts is not None
    assert result.facts["sparse_files"] == 2
    assert result.facts["file_bytes"] == 20 * MiB + 1 + 12 * MiB + 100_000  # apparent sizes, holes included
    restored = restore_dir / sparse_dir.relative_to("/")
    assert sparse_snapshot(restored) == before
    assert_sparse(restored)
    assert report.verification["bytes"] == len(result.data) == result.facts["bytes"]
    assert report.verification["file_bytes"] == result.facts["file_bytes"]
    assert report.verification["files"] == result.facts["files"] == 3


def test_an_in_place_restore_brings_back_the_holes(sparse_dir: Path) -> None:
    engine = engine_for([sparse_dir])
    before = sparse_snapshot(sparse_dir)
    dump = run_dump(engine)
    (sparse_dir / "tail-byte").write_bytes(b"\xff" * (2 * MiB))  # dense now, and different
    (sparse_dir / "regions").unlink()

    report = engine.restore(io.BytesIO(dump.data), mode="in-place")

    assert sparse_snapshot(sparse_dir) == before
    assert_sparse(sparse_dir)
    assert report.verification["paths"] == [str(sparse_dir)]
    assert report.verification["bytes"] == len(dump.data)


def _sparse_member(archive: bytes, name: str) -> int:
    """Offset of the ustar header of the sparse member whose real name is ``name``: the one after the pax
    header naming it (``GNU.sparse.name``; the ustar name field cuts a long temp path at 100 bytes)."""
    named = False
    offset = 0
    while offset + 512 <= len(archive):
        header = archive[offset : offset + 512]
        size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        if header[156:157] == b"x":
            records = archive[offset + 512 : offset + 512 + size]
            named = any(
                line.split(b"=", 1)[0].endswith(b" GNU.sparse.name") and line.endswith(b"/" + name.encode())
                for line in records.split(b"\n")
            )
        elif header[156:157] == b"0" and named and b"GNUSparseFile" in header[:100]:
            return offset
        else:
            named = False
        offset += 512 + (size + 511) // 512 * 512
    raise AssertionError(f"no sparse member {name}")


def test_a_sparse_archive_cut_in_its_map_or_its_data_is_rejected(sparse_dir: Path) -> None:
    engine = engine_for([sparse_dir])
    dump = run_dump(engine).data
    before = sparse_snapshot(sparse_dir)
    member = _sparse_member(dump, "regions")
    map_block = dump[member + 512 : member + 1024]
    assert map_block.startswith(b"4\n0\n65536\n")  # region count, then offset and size of each region

    cuts = {
        "in the map": member + 512 + 5,
        "at the end of the map": member + 1024,
        "in the first region": member + 1024 + REGION // 2,
        "in the last region": member + 1024 + 3 * REGION - 1,
    }
    for where, cut in cuts.items():
        with pytest.raises(InvalidDumpError, match="truncated"):
            validate(engine, dump[:cut], step=4096)
        with pytest.raises(EngineError):
            engine.restore(io.BytesIO(dump[:cut]), mode="in-place")
        assert sparse_snapshot(sparse_dir) == before, where  # an in-place restore changed nothing
    assert validate(engine, dump)["sparse_files"] == 2


def test_a_sparse_map_that_disagrees_with_its_member_is_rejected(sparse_dir: Path) -> None:
    dump = run_dump(engine_for([sparse_dir])).data
    member = _sparse_member(dump, "regions")
    map_at = member + 512
    wrong_count = dump[:map_at] + b"5" + dump[map_at + 1 :]  # five regions announced, four present
    wrong_size = (
        dump[:map_at] + dump[map_at : map_at + 512].replace(b"\n65536\n", b"\n65535\n", 1) + dump[map_at + 512 :]
    )

    for corrupted in (wrong_count, wrong_size):
        with pytest.raises(InvalidDumpError, match="sparse"):
            validate(engine_for([sparse_dir]), corrupted)


@pytest.mark.parametrize("options", [["--format=gnu"], ["--format=posix", "--sparse-version=0.1"]])
def test_sparse_archives_in_gnu_tars_other_formats_are_validated(sparse_dir: Path, options: list[str]) -> None:
    with (sparse_dir / "many-holes").open("wb") as handle:  # > 4 regions: old GNU extension blocks
        for i in range(30):
            handle.seek(i * MiB)
            handle.write(b"%d" % i)
    archive = subprocess.run(
        ["tar", "--create", "--file=-", "--sparse", *options, f"--directory={sparse_dir}", "."],
        capture_output=True,
        check=True,
    ).stdout

    facts = validate(engine_for([sparse_dir]), archive, step=1000)

    assert facts["sparse_files"] == 3
    assert facts["file_bytes"] == sum(p.stat().st_size for p in sparse_dir.iterdir())
    with pytest.raises(InvalidDumpError):
        validate(engine_for([sparse_dir]), archive[: len(archive) // 2])
