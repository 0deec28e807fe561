"""Incremental, bounded-memory format checks over raw dump bytes.

Every validator sees the dump's bytes in order through ``feed`` and decides in ``finish`` whether
the whole stream is a complete, well-formed dump of its format. ``feed`` already raises
``InvalidDumpError`` as soon as an error is certain (wrong magic, bad checksum, impossible field),
so a garbage stream is stopped early; truncation can only be judged by ``finish``. None of them keeps more than a few
KiB (plus, for pg_dump archives, one TOC string at a time) regardless of the dump's size.

What each one checks:

- ``PgCustomValidator`` (``pg_dump --format=custom`` written to a pipe): parses the complete archive.
  Header: ``PGDMP`` magic, archive version 1.12-1.16, int/offset sizes, format byte = custom,
  compression, creation time, database and version strings. TOC: every entry is parsed field by
  field (dump id, has-data flag, tag, desc, definition strings, dependencies, data-offset flag).
  Data: after the TOC a pipe-written archive is a sequence of data blocks (``BLK_DATA`` table data /
  ``BLK_BLOBS`` large objects), each a run of length-prefixed chunks ended by a zero length. The
  stream must end exactly at a block boundary **and** every TOC entry that announced data must have
  had its block. A pg_dump killed mid-stream (whatever exit code a wrapper reports) fails this.
  Archives of an unknown future version fall back to a header-only check (fact
  ``completeness_checked: False``).
- ``MariaDBSqlValidator``: the ``-- MariaDB dump``/``-- MySQL dump`` header within the first KiB and
  ``-- Dump completed`` as the last non-empty line.
- ``SQLiteValidator``: the 100-byte header (``SQLite format 3\\0``, a power-of-two page size), total
  length a whole number of pages, and equal to the header's page count when that count is valid.
- ``TarValidator``: every 512-byte header's checksum, sizes (octal or base-256), member data and
  padding, and the end-of-archive marker (two zero blocks) followed only by zeros.
- ``NonEmptyValidator``: at least one byte, optionally a magic prefix (command engine).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Generator
from typing import cast

from backup_agent.engines.base import Chunk, InvalidDumpError

# A parser is a generator that yields requests and receives bytes:
#   yield n (int)      -> receives exactly n bytes
#   yield _Skip(n)     -> n bytes are discarded (never buffered)
#   yield _AT_BOUNDARY -> marks a point where the stream may legitimately end; receives None
#   yield _REST        -> everything that follows is accepted unparsed (the stream may end anywhere)
#   yield _CHUNK_RUN   -> a run of length-prefixed chunks ended by a zero length is consumed by a
#                         tight loop in the driver (no generator round trip per chunk); receives b""
_Parser = Generator["int | _Skip | object", "bytes | None", None]


class _Skip:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


_AT_BOUNDARY = object()
_REST = object()  # accept whatever follows, up to the end of the stream
_CHUNK_RUN = object()  # length-prefixed chunks up to a zero length, handled by ``_chunk_run``


def _length_reader(int_size: int) -> Callable[[memoryview, int], tuple[int, int]]:
    """(sign byte, magnitude) of a pg_dump integer at a position, for the archive's int size."""
    fmt = {1: "<BB", 2: "<BH", 4: "<BI", 8: "<BQ"}.get(int_size)
    if fmt is not None:
        return cast(Callable[[memoryview, int], tuple[int, int]], struct.Struct(fmt).unpack_from)

    def read(buf: memoryview, pos: int) -> tuple[int, int]:
        return buf[pos], int.from_bytes(buf[pos + 1 : pos + 1 + int_size], "little")

    return read


class _ParsingValidator:
    """Drives a request/response parser generator over arbitrarily split chunks."""

    name = "dump"

    def __init__(self) -> None:
        self._buf = bytearray()
        self._total = 0
        self._at_boundary = False
        self._error: str | None = None
        self._done = False
        self._int_size = 4  # the width of a chunk length's magnitude (``_CHUNK_RUN``)
        self._unpack_length = _length_reader(4)
        self._chunk_skip = 0  # payload bytes of the current chunk still to pass over
        self._chunk_head = bytearray()  # a chunk length split across two fed pieces
        self._gen = self._parse()
        self._request: object = self._advance(None)

    def _parse(self) -> _Parser:  # pragma: no cover - abstract
        raise NotImplementedError
        yield 0

    def _advance(self, value: bytes | None) -> object:
        try:
            request = self._gen.send(value)
            while request is _AT_BOUNDARY:
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
            if request is _REST:
                return
            if request is _CHUNK_RUN:
                view = self._chunk_run(view)
                continue
            if isinstance(request, _Skip):
                take = min(request.n, len(view))
                request.n -= take
                view = view[take:]
                self._at_boundary = False
                if request.n == 0:
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
        self._at_boundary = False
        end = len(view)
        head_size = 1 + self._int_size
        pos = self._chunk_skip  # payload still to pass over from the previous piece (may be > end)
        head = self._chunk_head
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
        unpack = self._unpack_length
        while pos + head_size <= end:
            sign, length = unpack(view, pos)
            pos += head_size
            if sign or not length:
                return self._chunk_run_ends(sign, length, view[pos:])
            pos += length
        if pos >= end:
            self._chunk_skip = pos - end
        else:
            self._chunk_skip = 0
            head += view[pos:]
        return view[end:]

    def _chunk_run_ends(self, sign: int, length: int, rest: memoryview) -> memoryview:
        """A chunk length that is not a plain positive one: the run's zero terminator, or an error."""
        self._chunk_skip = 0
        if sign > 1:
            self._fail(f"bad integer sign byte {sign}")
        elif length == 0:
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
        if not self._done and not (self._at_boundary and not self._buf and not isinstance(self._request, _Skip)):
            raise InvalidDumpError(f"truncated {self.name}: the stream ended mid-record after {self._total} bytes")
        facts = self._facts()
        facts["bytes"] = self._total
        return facts


# --------------------------------------------------------------------------------------------------
# pg_dump custom format

_K_OFFSET_POS_NOT_SET = 1
_K_OFFSET_POS_SET = 2
_K_OFFSET_NO_DATA = 3
_BLK_DATA = 1
_BLK_BLOBS = 3
_MAX_KEPT_STR = 4096
_MAX_STR = 1 << 30


class PgCustomValidator(_ParsingValidator):
    name = "pg_dump custom archive"

    def __init__(self) -> None:
        self.version: tuple[int, int, int] | None = None
        self._off_size = 8
        self.dbname: str | None = None
        self.server_version: str | None = None
        self.pg_dump_version: str | None = None
        self.toc_entries = 0
        self.tables: int = 0
        self.table_names: list[str] = []
        self._expected: set[int] = set()
        self._seen: set[int] = set()
        self.data_blocks = 0
        self.large_objects = 0
        self.completeness_checked = True
        super().__init__()

    def _int(self) -> Generator[object, bytes | None, int]:
        raw = yield 1 + self._int_size
        assert raw is not None  # noqa: S101
        if raw[0] not in (0, 1):
            raise InvalidDumpError(f"bad integer sign byte {raw[0]}")
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def _str(self, keep: bool = False) -> Generator[object, bytes | None, str | None]:
        length = yield from self._int()
        if length == -1:
            return None
        if length < 0 or length > _MAX_STR:
            raise InvalidDumpError(f"implausible string length {length}")
        if length == 0:
            return ""
        if keep and length <= _MAX_KEPT_STR:
            raw = yield length
            assert raw is not None  # noqa: S101
            return raw.decode("utf-8", "replace")
        yield _Skip(length)
        return ""

    def _parse(self) -> _Parser:
        magic = yield 5
        if magic != b"PGDMP":
            raise InvalidDumpError("missing PGDMP magic: not a pg_dump custom-format archive")
        head = yield 6
        assert head is not None  # noqa: S101
        vmaj, vmin, vrev, int_size, off_size, fmt = head
        self.version = (vmaj, vmin, vrev)
        if not 1 <= int_size <= 8 or not 1 <= off_size <= 8:
            raise InvalidDumpError(f"implausible int/offset sizes {int_size}/{off_size}")
        self._int_size, self._off_size = int_size, off_size
        self._unpack_length = _length_reader(int_size)
        if fmt != 1:
            raise InvalidDumpError(f"archive format {fmt} is not custom (1); use pg_dump --format=custom")
        if (vmaj, vmin) < (1, 12):
            raise InvalidDumpError(f"archive version {vmaj}.{vmin} is too old")
        if (vmaj, vmin) >= (1, 15):
            yield 1  # compression algorithm
        else:
            yield from self._int()  # compression level
        for _ in range(7):  # creation time fields
            yield from self._int()
        self.dbname = yield from self._str(keep=True)
        self.server_version = yield from self._str(keep=True)
        self.pg_dump_version = yield from self._str(keep=True)
        if (vmaj, vmin) > (1, 16):
            # a newer archive layout than this parser knows: header verified, the rest is skipped
            self.completeness_checked = False
            yield _AT_BOUNDARY
            yield _REST
        count = yield from self._int()
        if count < 0 or count > 10_000_000:
            raise InvalidDumpError(f"implausible TOC entry count {count}")
        for _ in range(count):
            yield from self._toc_entry()
        # data blocks until the end of the stream
        while True:
            yield _AT_BOUNDARY
            block = yield 1
            assert block is not None  # noqa: S101
            dump_id = yield from self._int()
            if dump_id not in self._expected:
                raise InvalidDumpError(f"data block for unknown or data-less TOC entry {dump_id}")
            if dump_id in self._seen:
                raise InvalidDumpError(f"duplicate data block for TOC entry {dump_id}")
            self._seen.add(dump_id)
            self.data_blocks += 1
            if block[0] == _BLK_DATA:
                yield from self._chunks()
            elif block[0] == _BLK_BLOBS:
                while True:
                    oid = yield from self._int()
                    if oid == 0:
                        break
                    self.large_objects += 1
                    yield from self._chunks()
            else:
                raise InvalidDumpError(f"unknown data block type {block[0]}")

    def _chunks(self) -> Generator[object, bytes | None, None]:
        yield _CHUNK_RUN  # the driver's tight loop: one generator round trip per block, not per row

    def _toc_entry(self) -> Generator[object, bytes | None, None]:
        assert self.version is not None  # noqa: S101
        version = self.version[:2]
        dump_id = yield from self._int()
        if dump_id <= 0:
            raise InvalidDumpError(f"TOC entry id {dump_id} out of range")
        had_dumper = yield from self._int()
        yield from self._str()  # tableoid
        yield from self._str()  # oid
        tag = yield from self._str(keep=True)
        desc = yield from self._str(keep=True)
        yield from self._int()  # section
        yield from self._str()  # defn
        yield from self._str()  # dropStmt
        yield from self._str()  # copyStmt
        namespace = yield from self._str(keep=True)
        yield from self._str()  # tablespace
        if version >= (1, 14):
            yield from self._str()  # tableam
        if version >= (1, 16):
            yield from self._int()  # relkind
        yield from self._str()  # owner
        yield from self._str()  # "false" (with oids)
        for _ in range(1_000_000):
            dep = yield from self._str()
            if dep is None:
                break
        else:
            raise InvalidDumpError("unterminated dependency list")
        flag_and_offset = yield 1 + self._off_size
        assert flag_and_offset is not None  # noqa: S101
        flag = flag_and_offset[0]
        if flag not in (_K_OFFSET_POS_NOT_SET, _K_OFFSET_POS_SET, _K_OFFSET_NO_DATA):
            raise InvalidDumpError(f"bad data-offset flag {flag} in TOC entry {dump_id}")
        if had_dumper and flag != _K_OFFSET_NO_DATA:
            self._expected.add(dump_id)
        self.toc_entries += 1
        if desc == "TABLE":
            self.tables += 1
            if len(self.table_names) < 1000:
                self.table_names.append(f"{namespace}.{tag}" if namespace else str(tag))

    def finish(self) -> dict[str, object]:
        facts = super().finish()
        missing = self._expected - self._seen
        if missing and self.completeness_checked:
            raise InvalidDumpError(
                f"truncated {self.name}: {len(missing)} of {len(self._expected)} announced data blocks never"
                f" arrived (TOC entries {sorted(missing)[:10]})"
            )
        return facts

    def _facts(self) -> dict[str, object]:
        version = ".".join(str(v) for v in self.version) if self.version else None
        return {
            "archive_version": version,
            "database": self.dbname,
            "server_version": self.server_version,
            "pg_dump_version": self.pg_dump_version,
            "toc_entries": self.toc_entries,
            "tables": self.tables,
            "data_blocks": self.data_blocks,
            "large_objects": self.large_objects,
            "completeness_checked": self.completeness_checked,
        }


# --------------------------------------------------------------------------------------------------
# tar


def _tar_number(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field, "big")
        return value & ~(0x80 << (8 * (len(field) - 1)))
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as exc:
        raise InvalidDumpError(f"bad octal number {text!r} in tar header") from exc


class TarValidator(_ParsingValidator):
    name = "tar archive"

    def __init__(self) -> None:
        self.members = 0
        self.files = 0
        self.dirs = 0
        self.file_bytes = 0
        super().__init__()

    def _parse(self) -> _Parser:
        while True:
            header = yield 512
            assert header is not None  # noqa: S101
            if header == bytes(512):
                second = yield 512
                if second != bytes(512):
                    raise InvalidDumpError("a single zero block is not an end-of-archive marker")
                # end of archive; the rest of the record must be zero padding
                while True:
                    yield _AT_BOUNDARY
                    pad = yield 512
                    if pad != bytes(512):
                        raise InvalidDumpError("non-zero data after the end-of-archive marker")
            stored = _tar_number(header[148:156])
            unsigned = sum(header[:148]) + 8 * 32 + sum(header[156:])
            signed = sum(b - 256 if b > 127 else b for b in header[:148]) + 8 * 32
            signed += sum(b - 256 if b > 127 else b for b in header[156:])
            if stored not in (unsigned, signed):
                raise InvalidDumpError(f"tar header checksum mismatch at member {self.members + 1}")
            typeflag = header[156:157]
            size = _tar_number(header[124:136])
            if size < 0:
                raise InvalidDumpError("negative member size")
            # links, devices, directories and fifos carry no data whatever their size field says
            size_to_skip = 0 if typeflag in (b"1", b"2", b"3", b"4", b"5", b"6") else size
            if typeflag not in (b"x", b"g", b"L", b"K"):
                self.members += 1
                if typeflag in (b"0", b"\0", b"7"):
                    self.files += 1
                    self.file_bytes += size
                elif typeflag == b"5":
                    self.dirs += 1
            if size_to_skip:
                yield _Skip(size_to_skip + (-size_to_skip % 512))

    def _facts(self) -> dict[str, object]:
        return {"members": self.members, "files": self.files, "dirs": self.dirs, "file_bytes": self.file_bytes}


# --------------------------------------------------------------------------------------------------
# mariadb / mysql SQL


_CREATE = re.compile(rb"\nCREATE TABLE `((?:[^`\n]|``){1,256})`")
_CARRY = 1024
_COMPLETED = re.compile(rb"-- Dump completed( on \d{4}-\d\d-\d\d\s+\d\d?:\d\d:\d\d)?")


class MariaDBSqlValidator:
    name = "mariadb-dump SQL"
    _HEAD = 1024
    _TAIL = 512

    def __init__(self) -> None:
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0
        self._carry = b""
        self.table_names: list[str] = []

    @property
    def create_tables(self) -> int:
        return len(self.table_names)

    def feed(self, chunk: Chunk) -> None:
        if not chunk:
            return
        self._total += len(chunk)
        if len(self._head) < self._HEAD:
            self._head += chunk[: self._HEAD - len(self._head)]
        self._tail += chunk[-self._TAIL :]
        if len(self._tail) > self._TAIL:
            del self._tail[: len(self._tail) - self._TAIL]
        data = self._carry + chunk
        for match in _CREATE.finditer(data):
            # a match lying entirely inside the carried bytes was seen with the previous chunk
            if match.end() > len(self._carry) and len(self.table_names) < 100_000:
                self.table_names.append(match.group(1).replace(b"``", b"`").decode("utf-8", "replace"))
        self._carry = data[-_CARRY:]

    def finish(self) -> dict[str, object]:
        if self._total == 0:
            raise InvalidDumpError(f"empty {self.name}: the dump produced no bytes")
        head = bytes(self._head)
        if b"-- MariaDB dump" not in head and b"-- MySQL dump" not in head:
            raise InvalidDumpError(f"invalid {self.name}: no '-- MariaDB dump' header in the first KiB")
        tail = bytes(self._tail)
        lines = [line for line in tail.splitlines() if line.strip()]
        if not tail.endswith(b"\n") or not lines or not _COMPLETED.fullmatch(lines[-1].rstrip(b"\r")):
            raise InvalidDumpError(
                f"truncated {self.name}: the last line is not '-- Dump completed' after {self._total} bytes"
            )
        return {"bytes": self._total, "create_tables": self.create_tables}


# --------------------------------------------------------------------------------------------------
# sqlite

_SQLITE_MAGIC = b"SQLite format 3\x00"


class SQLiteValidator:
    name = "SQLite database"

    def __init__(self) -> None:
        self._header = bytearray()
        self._total = 0

    def feed(self, chunk: Chunk) -> None:
        if len(self._header) < 100:
            self._header += chunk[: 100 - len(self._header)]
            if len(self._header) >= len(_SQLITE_MAGIC) and not self._header.startswith(_SQLITE_MAGIC):
                raise InvalidDumpError(f"invalid {self.name}: missing 'SQLite format 3' header")
        self._total += len(chunk)

    def finish(self) -> dict[str, object]:
        if self._total == 0:
            raise InvalidDumpError(f"empty {self.name}: the dump produced no bytes")
        header = bytes(self._header)
        if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
            raise InvalidDumpError(f"invalid {self.name}: missing 'SQLite format 3' header")
        raw_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if raw_size == 1 else raw_size
        if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
            raise InvalidDumpError(f"invalid {self.name}: page size {page_size} is not a power of two")
        if self._total % page_size:
            raise InvalidDumpError(
                f"truncated {self.name}: {self._total} bytes is not a whole number of {page_size}-byte pages"
            )
        pages = int.from_bytes(header[28:32], "big")
        change_counter = header[24:28]
        valid_for = header[92:96]
        if pages and change_counter == valid_for and pages * page_size != self._total:
            raise InvalidDumpError(
                f"truncated {self.name}: header says {pages} pages of {page_size} bytes, got {self._total} bytes"
            )
        return {"bytes": self._total, "page_size": page_size, "pages": self._total // page_size}


# --------------------------------------------------------------------------------------------------
# command


class NonEmptyValidator:
    name = "dump"

    def __init__(self, magic: bytes | None = None) -> None:
        self._magic = magic or b""
        self._head = bytearray()
        self._total = 0

    def feed(self, chunk: Chunk) -> None:
        if len(self._head) < len(self._magic):
            self._head += chunk[: len(self._magic) - len(self._head)]
            if len(self._head) == len(self._magic) and bytes(self._head) != self._magic:
                raise InvalidDumpError(f"the dump does not start with the configured magic {self._magic.hex()}")
        self._total += len(chunk)

    def finish(self) -> dict[str, object]:
        if self._total == 0:
            raise InvalidDumpError("empty dump: the command produced no bytes")
        if self._magic and bytes(self._head) != self._magic:
            raise InvalidDumpError(f"the dump does not start with the configured magic {self._magic.hex()}")
        return {"bytes": self._total}


class Deferred:
    """Wraps a validator so that ``feed`` never raises; the first error is raised by ``finish``.

    Restores use it as a tap on the stream they pipe into a tool: the tool's own failure and the
    format verdict are then reported together, and cleanup paths stay in one place.
    """

    def __init__(
        self, inner: PgCustomValidator | TarValidator | MariaDBSqlValidator | SQLiteValidator | NonEmptyValidator
    ) -> None:
        self.inner = inner
        self._error: InvalidDumpError | None = None

    def feed(self, chunk: Chunk) -> None:
        if self._error is None:
            try:
                self.inner.feed(chunk)
            except InvalidDumpError as exc:
                self._error = exc

    def finish(self) -> dict[str, object]:
        if self._error is not None:
            raise self._error
        return self.inner.finish()
