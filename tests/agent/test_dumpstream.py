"""DumpReader: batching a dump pipe into one reusable buffer without losing or reordering a byte."""

from __future__ import annotations

import io
import os
import random
import threading
import time

import pytest

from backup_agent.dumpstream import BATCH, DumpReader

pytestmark = pytest.mark.unit


def _drain(reader: DumpReader) -> tuple[bytes, list[int]]:
    out = bytearray()
    sizes = []
    while chunk := reader.read():
        out += chunk
        sizes.append(len(chunk))
    return bytes(out), sizes


def _writer(fd: int, pieces: list[bytes], pause_every: int = 0, pause_s: float = 0.0) -> threading.Thread:
    def run() -> None:
        with os.fdopen(fd, "wb", buffering=0) as out:
            for i, piece in enumerate(pieces):
                out.write(piece)
                if pause_every and i % pause_every == 0:
                    time.sleep(pause_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_small_writes_arrive_complete_in_order_and_in_large_batches() -> None:
    rng = random.Random(7)
    pieces = [rng.randbytes(rng.randint(1, 8192)) for _ in range(3000)]  # like pg_dump's stdio writes
    read_fd, write_fd = os.pipe()
    writer = _writer(write_fd, pieces, pause_every=50, pause_s=0.0005)

    with os.fdopen(read_fd, "rb") as stream:
        reader = DumpReader(stream)
        data, sizes = _drain(reader)
    writer.join()

    assert data == b"".join(pieces)
    assert reader.pipe_size >= 512 * 1024, "the pipe should have been enlarged"
    assert len(sizes) < len(pieces) / 10, "small writes should be delivered in batches"
    assert sum(1 for size in sizes[:-1] if size < BATCH) <= len(sizes) // 4  # short only when the writer stalled
    assert reader.read() == b""  # end of stream stays the end


def test_a_trickling_writer_is_delivered_after_the_maximum_wait_not_held_back() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"first")
    with os.fdopen(read_fd, "rb") as stream:
        reader = DumpReader(stream, max_wait_s=0.02)
        started = time.monotonic()
        chunk = reader.read()
        waited = time.monotonic() - started
        assert bytes(chunk) == b"first"
        assert waited < 1.0
        os.close(write_fd)
        assert reader.read() == b""


def test_a_stream_without_a_pipe_is_read_without_waiting() -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    sleeps: list[float] = []
    reader = DumpReader(io.BufferedReader(io.BytesIO(payload)), sleep=sleeps.append)

    data, sizes = _drain(reader)

    assert data == payload
    assert reader.pipe_size == 0
    assert sleeps == []
    assert max(sizes) <= 1024 * 1024


def test_the_returned_view_is_reused_so_callers_must_consume_it_before_reading_again() -> None:
    reader = DumpReader(io.BufferedReader(io.BytesIO(b"a" * 10 + b"b" * 10)), buffer_size=10, batch=10)
    first = reader.read()
    assert bytes(first) == b"a" * 10
    reader.read()
    assert bytes(first) == b"b" * 10  # same buffer: this is the documented contract


def test_a_batch_larger_than_the_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match="batch"):
        DumpReader(io.BytesIO(b""), buffer_size=1024, batch=2048)
