"""The driver of the parsing validators (pg_dump custom archives, tar): a parser generator fed by chunks.

A format is written as a generator that asks for the bytes it needs next; ``ParsingValidator`` feeds
it from arbitrarily split chunks, keeps only what one request needs (a few KiB), and turns the
generator's ``InvalidDumpError`` or its end into the validator's verdict.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator
from typing import cast

from backup_agent.engines.base import Chunk, InvalidDumpError

# A parser is a generator that yields requests and receives bytes:
#   yield n (int)     -> receives exactly n bytes
#   yield Skip(n)     -> n bytes are discarded (never buffered)
#   yield AT_BOUNDARY -> marks a point where the stream may legitimately end; receives None
#   yield REST        -> everything that follows is accepted unparsed (the stream may end anywhere)
#   yield CHUNK_RUN   -> a run of length-prefixed chunks ended by a zero length is consumed by a
#                        tight loop in the driver (no generator round trip per chunk); receives b"";
#                        ``chunks_in_run`` then holds how many chunks the run had
Parser = Generator["int | Skip | object", "bytes | None", None]


class Skip:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


AT_BOUNDARY = object()
REST = object()  # accept whatever follows, up to the end of the stream
CHUNK_RUN = object()  # length-prefixed chunks up to a zero length, handled by ``_chunk_run``


def length_reader(int_size: int) -> Callable[[memoryview, int], tuple[int, int]]:
    """(sign byte, magnitude) of a pg_dump integer at a position, for the archive's int size."""
    fmt = {1: "<BB", 2: "<BH", 4: "<BI", 8: "<BQ"}.get(int_size)
    if fmt is not None:
        return cast(Callable[[memoryview, int], tuple[int, int]], struct.Struct(fmt).unpack_from)

    def read(buf: memoryview, pos: int) -> tuple[int, int]:
        return buf[pos], int.from_bytes(buf[pos + 1 : pos + 1 + int_size], "little")

    return read


class ParsingValidator:
    """Drives a request/response parser generator over arbitrarily split chunks."""

    name = "dump"

    def __init__(self) -> None:
        self._buf = bytearray()
        self._total = 0
        self._at_boundary = False
        self._error: str | None = None
        self._done = False
        self._int_size = 4  # the width of a chunk length's magnitude (``CHUNK_RUN``)
        self._unpack_length = length_reader(4)
        self._chunk_skip = 0  # payload bytes of the current chunk still to pass over
        self._chunk_head = bytearray()  # a chunk length split across two fed pieces
        self.chunks_in_run = 0  # chunks of the current (or, once the parser resumes, the last) run
        self.position = 0  # when the parser resumes: the stream offset just past the bytes it received
        self._in_run = False  # inside a run: chunks_in_run is counting
        self._gen = self._parse()
        self._request: object = self._advance(None)

    def _parse(self) -> Parser:  # pragma: no cover - abstract
        raise NotImplementedError
        yield 0

    def _advance(self, value: bytes | None) -> object:
        try:
            request = self._gen.send(value)
            while request is AT_BOUNDARY:
                self._at_boundary = True
                request = self._gen.send(None)
            return request
        except StopIteration:
            self._done = True
            return None
        except InvalidDumpError as exc:
            self._error = str(exc)
            self._done = True
            return None

    def feed(self, chunk: Chunk) -> None:
        self._total += len(chunk)
        if self._done:
            self._after_end(chunk)
            if self._error is not None:
                raise InvalidDumpError(f"invalid {self.name} after {self._total} bytes: {self._error}")
            return
        view = memoryview(chunk)
        while view and not self._done:
            request = self._request
            if request is REST:
                return
            if request is CHUNK_RUN:
                view = self._chunk_run(view)
                continue
            if isinstance(request, Skip):
                take = min(request.n, len(view))
                request.n -= take
                view = view[take:]
                self._at_boundary = False
                if request.n == 0:
                    self.position = self._total - len(view)
                    self._request = self._advance(b"")
                continue
            assert isinstance(request, int)  # noqa: S101 - parser protocol
            need = request - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            self._at_boundary = False
            if len(self._buf) == request:
                data = bytes(self._buf)
                self._buf.clear()
                self.position = self._total - len(view)
                self._request = self._advance(data)
        if view and self._done:
            self._after_end(view)
        if self._error is not None:  # definitive: stop the pipeline now rather than at finish()
            raise InvalidDumpError(f"invalid {self.name} after {self._total} bytes: {self._error}")

    def _chunk_run(self, view: memoryview) -> memoryview:
        """Consume length-prefixed chunks (sign byte + little-endian magnitude) up to a zero length.

        pg_dump writes one chunk per COPY row, millions per GiB, so this is the validator's hot
        loop: one ``struct`` unpack and two additions per row, positions only, payload bytes never
        copied. Returns what is left of ``view`` after the terminating zero length (or an empty
        view if the run continues in the next piece).
        """
        if not self._in_run:
            self._in_run = True
            self.chunks_in_run = 0
        self._at_boundary = False
        end = len(view)
        head_size = 1 + self._int_size
        pos = self._chunk_skip  # payload still to pass over from the previous piece (may be > end)
        head = self._chunk_head
        chunks = 0
        if head:  # a length split across pieces: complete it first
            take = min(head_size - len(head), end)
            head += view[:take]
            if len(head) < head_size:
                return view[end:]
            sign, length = head[0], int.from_bytes(head[1:], "little")
            head.clear()
            pos = take
            if sign or not length:
                return self._chunk_run_ends(sign, length, view[pos:])
            pos += length
            chunks = 1
        unpack = self._unpack_length
        while pos + head_size <= end:
            sign, length = unpack(view, pos)
            pos += head_size
            if sign or not length:
                self.chunks_in_run += chunks
                return self._chunk_run_ends(sign, length, view[pos:])
            pos += length
            chunks += 1
        self.chunks_in_run += chunks
        if pos >= end:
            self._chunk_skip = pos - end
        else:
            self._chunk_skip = 0
            head += view[pos:]
        return view[end:]

    def _chunk_run_ends(self, sign: int, length: int, rest: memoryview) -> memoryview:
        """A chunk length that is not a plain positive one: the run's zero terminator, or an error."""
        self._chunk_skip = 0
        self._in_run = False
        if sign > 1:
            self._fail(f"bad integer sign byte {sign}")
        elif length == 0:
            self.position = self._total - len(rest)
            self._request = self._advance(b"")
        else:
            self._fail(f"negative data chunk length {-length}")
        return rest

    def _fail(self, message: str) -> None:
        self._error = message
        self._done = True
        self._request = None

    def _after_end(self, chunk: Chunk) -> None:
        if self._error is None and chunk:
            self._error = f"unexpected data after the end of the {self.name}"

    def _facts(self) -> dict[str, object]:
        return {}

    def finish(self) -> dict[str, object]:
        if self._total == 0:
            raise InvalidDumpError(f"empty {self.name}: the dump produced no bytes")
        if self._error is not None:
            raise InvalidDumpError(f"invalid {self.name} after {self._total} bytes: {self._error}")
        if not self._done and not (self._at_boundary and not self._buf and not isinstance(self._request, Skip)):
            raise InvalidDumpError(f"truncated {self.name}: the stream ended mid-record after {self._total} bytes")
        facts = self._facts()
        facts["bytes"] = self._total
        return facts
