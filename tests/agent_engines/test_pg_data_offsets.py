"""A pg_dump archive written to a pipe has no data offsets in its TOC; the validator finds where each
entry's offset field and each data block are, so the raw copy a restore writes to disk gets them (as
pg_dump writes them to a seekable file) and every parallel pg_restore job seeks to its blocks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from backup_agent.engines.validators import PgCustomValidator

from .conftest import PG, psql, unique

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _dump(db: str, *, to_file: Path | None = None) -> bytes:
    argv = ["pg_dump", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], "-Fc", "-Z0", db]
    if to_file is not None:
        subprocess.run([*argv, "-f", str(to_file)], check=True)
        return to_file.read_bytes()
    return subprocess.run(argv, capture_output=True, check=True).stdout  # a pipe: no offsets


def test_the_patched_pipe_archive_has_the_offsets_pg_dump_writes_to_a_file(
    postgres_server: None, tmp_path: Path
) -> None:
    db = unique("offsets")
    psql("postgres", f'CREATE DATABASE "{db}";')
    try:
        psql(
            db,
            "CREATE TABLE a (x int); INSERT INTO a SELECT generate_series(1, 5000);"
            " CREATE TABLE b (y text); INSERT INTO b SELECT md5(g::text) FROM generate_series(1, 300) g;"
            " SELECT lo_from_bytea(0, 'large');",
        )
        piped = _dump(db)
        from_file = _dump(db, to_file=tmp_path / "file.pgdump")
        validator = PgCustomValidator()
        validator.feed(piped)
        validator.finish()
        patches = validator.data_offsets()

        patched = bytearray(piped)
        for offset, data in patches:
            patched[offset : offset + len(data)] = data

        assert len(patches) == 3  # two tables' data and the large objects
        header = 100  # the archive's creation time differs between the two dumps; the rest is the same
        assert bytes(patched[header:]) == from_file[header:]
        assert piped[header:] != from_file[header:]
    finally:
        psql("postgres", f'DROP DATABASE IF EXISTS "{db}";', check=False)
