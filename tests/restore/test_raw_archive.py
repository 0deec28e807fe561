"""``RawArchive``: the object decompressed into a seekable raw dump while it downloads, checked by the
engine's validator on the way; nothing is handed to the engine unless it decompressed completely and
the validator accepted the whole. (Every PostgreSQL restore in tests/restore goes through it whole.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard

from backup_agent.engines.validators import PgCustomValidator
from backup_agent.restore.failure import RestoreFailure
from backup_agent.restore.source import RawArchive

pytestmark = pytest.mark.unit


def _archive(tmp_path: Path) -> RawArchive:
    return RawArchive(tmp_path / "raw", "zstd", PgCustomValidator)


def test_a_stream_that_decompresses_but_is_no_whole_archive_is_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    archive.start()
    compressed = zstandard.ZstdCompressor().compress(b"PGDMP" + b"\x01" * 10)
    for i in range(0, len(compressed), 7):
        archive.write(compressed[i : i + 7])

    with pytest.raises(RestoreFailure, match="not a valid dump") as failure:
        archive.verified()
    assert (failure.value.stage, failure.value.touched) == ("verify-object", False)


def test_bytes_that_do_not_decompress_are_refused_as_such(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    archive.start()
    archive.write(b"this is not zstd at all")

    with pytest.raises(RestoreFailure, match="does not decompress") as failure:
        archive.verified()
    assert (failure.value.stage, failure.value.touched) == ("verify-object", False)


def test_a_retried_download_starts_the_raw_file_and_the_validator_anew(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    archive.start()
    archive.write(b"not zstd")
    first_validator = archive.validator

    archive.start()  # the retry after a network error

    assert archive.problem is None
    assert archive.validator is not first_validator
    assert (tmp_path / "raw").stat().st_size == 0
    archive.close()


def test_only_zstd_objects_are_restored_from_a_raw_archive(tmp_path: Path) -> None:
    with pytest.raises(RestoreFailure, match="unsupported compression"):
        RawArchive(tmp_path / "raw", "gzip", PgCustomValidator)
