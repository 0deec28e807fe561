"""The pg_dump custom-format parser across archive versions (PostgreSQL 12-15: 1.14, 16: 1.15, 17: 1.16).

Only pg_dump 15 is installed here, so archives of the other layouts are synthesized by a tiny writer
that follows pg_backup_archiver.c (WriteHead/WriteToc) and pg_backup_custom.c (data blocks); the
writer itself is checked against the real ``pg_restore`` for the 1.14 layout.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from backup_agent.engines.base import InvalidDumpError
from backup_agent.engines.validators import PgCustomValidator

pytestmark = pytest.mark.integration


def w_int(value: int, size: int = 4) -> bytes:
    return bytes([1 if value < 0 else 0]) + abs(value).to_bytes(size, "little")


def w_str(value: str | None, size: int = 4) -> bytes:
    if value is None:
        return w_int(-1, size)
    raw = value.encode()
    return w_int(len(raw), size) + raw


TABLE_DEFN = "CREATE TABLE public.t (id integer);\n"


def synth_archive(
    version: tuple[int, int, int], *, with_data: bool = True, rows: list[bytes] | None = None, int_size: int = 4
) -> bytes:
    """An archive with one table; its data block holds one chunk per row (pg_dump -Z0 writes one per COPY row)."""

    def wi(value: int) -> bytes:
        return w_int(value, int_size)

    def ws(value: str | None) -> bytes:
        return w_str(value, int_size)

    out = b"PGDMP" + bytes([*version, int_size, 8, 1])
    out += bytes([0]) if version[:2] >= (1, 15) else wi(0)  # compression: algorithm byte / level int
    for field in (1, 2, 3, 4, 5, 126, 0):  # creation time
        out += wi(field)
    out += ws("synth") + ws("16.4") + ws("16.4")
    entries = [
        (1, "ENCODING", "ENCODING", False, "SET client_encoding = 'UTF8';\n", None),
        (2, "STDSTRINGS", "STDSTRINGS", False, "SET standard_conforming_strings = 'on';\n", None),
        (3, "TABLE", "t", False, TABLE_DEFN, None),
        (4, "TABLE DATA", "t", with_data, "", "COPY public.t (id) FROM stdin;\n"),
    ]
    out += wi(len(entries))
    for dump_id, desc, tag, has_data, defn, copy in entries:
        out += wi(dump_id) + wi(1 if has_data else 0) + ws("0") + ws(str(16000 + dump_id))
        out += ws(tag) + ws(desc) + wi(3 if desc == "TABLE DATA" else 2)
        out += ws(defn) + ws("") + ws(copy)
        out += ws("public" if desc.startswith("TABLE") else None) + ws("")
        if version[:2] >= (1, 14):
            out += ws("heap" if desc == "TABLE" else None)
        if version[:2] >= (1, 16):
            out += wi(ord("r") if desc.startswith("TABLE") else 0)
        out += ws("postgres") + ws("false")
        out += (ws("3") if desc == "TABLE DATA" else b"") + ws(None)
        out += bytes([1 if has_data else 3]) + bytes(8)
    if with_data:
        chunks = rows if rows is not None else [b"1\n2\n3\n\\.\n\n"]
        out += bytes([1]) + wi(4) + b"".join(wi(len(chunk)) + chunk for chunk in chunks) + wi(0)
    return out


def feed_all(validator: PgCustomValidator, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        validator.feed(data[i : i + step])


def check(data: bytes, step: int = 3) -> dict[str, object]:
    validator = PgCustomValidator()
    feed_all(validator, data, step)
    return validator.finish()


@pytest.mark.skipif(shutil.which("pg_restore") is None, reason="pg_restore is not installed")
def test_the_synthetic_writer_produces_what_pg_restore_reads() -> None:
    script = subprocess.run(
        ["pg_restore", "--file=-"], input=synth_archive((1, 14, 0)), capture_output=True, check=False, timeout=30
    )

    assert script.returncode == 0, script.stderr.decode()
    assert "CREATE TABLE public.t" in script.stdout.decode()
    assert "COPY public.t (id) FROM stdin;\n1\n2\n3\n" in script.stdout.decode()


@pytest.mark.parametrize("version", [(1, 14, 0), (1, 15, 0), (1, 16, 0)])
def test_complete_archives_of_each_version_are_accepted(version: tuple[int, int, int]) -> None:
    facts = check(synth_archive(version))

    assert facts["tables"] == 1
    assert facts["data_blocks"] == 1
    assert facts["completeness_checked"] is True


@pytest.mark.parametrize("version", [(1, 14, 0), (1, 15, 0), (1, 16, 0)])
def test_every_truncation_of_each_version_is_rejected(version: tuple[int, int, int]) -> None:
    data = synth_archive(version)

    for cut in range(len(data)):
        with pytest.raises(InvalidDumpError):
            check(data[:cut], step=4096)


def test_an_archive_whose_announced_data_block_never_came_is_rejected() -> None:
    data = synth_archive((1, 16, 0))
    block = bytes([1]) + w_int(4) + w_int(10) + b"1\n2\n3\n\\.\n\n" + w_int(0)
    assert data.endswith(block)
    toc_only = data[: -len(block)]

    with pytest.raises(InvalidDumpError, match="announced data blocks never arrived"):
        check(toc_only)


def test_an_unknown_future_version_gets_a_header_only_check() -> None:
    data = synth_archive((1, 16, 0)).replace(b"PGDMP\x01\x10", b"PGDMP\x01\x11", 1)

    facts = check(data)

    assert facts["completeness_checked"] is False
    with pytest.raises(InvalidDumpError):
        check(data[:20])


ROWS = [f"{i}\n".encode() * (i % 7 + 1) for i in range(1, 40)] + [b"\\.\n\n"]


def test_a_data_block_of_many_row_chunks_gives_the_same_verdict_however_the_stream_is_split() -> None:
    data = synth_archive((1, 15, 0), rows=ROWS)
    whole = check(data, step=len(data))

    for step in range(1, 14):
        assert check(data, step=step) == whole
    assert whole["data_blocks"] == 1
    for cut in range(len(data) - 200, len(data)):  # every cut inside the run of row chunks
        with pytest.raises(InvalidDumpError, match="truncated"):
            check(data[:cut], step=5)


@pytest.mark.parametrize("int_size", [2, 3, 8])
def test_archives_with_other_integer_widths_are_walked_row_by_row(int_size: int) -> None:
    data = synth_archive((1, 15, 0), rows=ROWS, int_size=int_size)

    assert check(data, step=7)["data_blocks"] == 1
    for cut in (len(data) - 1, len(data) - int_size - 1, len(data) - 40):
        with pytest.raises(InvalidDumpError, match="truncated"):
            check(data[:cut], step=7)


@pytest.mark.parametrize(
    ("corrupt_length", "message"),
    [
        (bytes([2]) + (3).to_bytes(4, "little"), "bad integer sign byte 2"),
        (w_int(-3), "negative data chunk length -3"),
    ],
    ids=["bad-sign-byte", "negative-length"],
)
def test_a_corrupt_row_chunk_length_is_rejected_at_once(corrupt_length: bytes, message: str) -> None:
    data = synth_archive((1, 15, 0), rows=ROWS)
    ninth_row = w_int(len(ROWS[8])) + ROWS[8]
    assert data.count(ninth_row) == 1
    corrupt = data.replace(ninth_row, corrupt_length + ROWS[8], 1)

    for step in (1, 4, 4096):
        with pytest.raises(InvalidDumpError, match=message):
            feed_all(PgCustomValidator(), corrupt, step)
