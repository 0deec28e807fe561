"""``pg_dump --format=custom`` archives written to a pipe, parsed completely: header, TOC, data blocks.

In an uncompressed archive (``--compress=0``, as the agent dumps) pg_dump writes every COPY row as one
data chunk and ends the block with an end-of-data chunk, so a table's data block tells its row count:
the manifest records them (``rows`` of the largest tables, ``rows_total``) and a restore is checked
against them.

An archive written to a pipe has no data offsets in its TOC (pg_dump cannot seek back to write them),
so a parallel ``pg_restore --jobs`` would have each worker scan the file for its blocks. The validator
notes where each TOC entry's offset field and each data block are; ``data_offsets`` gives the patches
that make a raw copy of the archive on disk what pg_dump writes to a seekable file.
"""

from __future__ import annotations

from collections.abc import Generator

from backup_agent.engines.base import InvalidDumpError
from backup_agent.engines.validators._parsing import (
    AT_BOUNDARY,
    CHUNK_RUN,
    REST,
    Parser,
    ParsingValidator,
    Skip,
    length_reader,
)

_K_OFFSET_POS_NOT_SET = 1
_K_OFFSET_POS_SET = 2
_K_OFFSET_NO_DATA = 3
_BLK_DATA = 1
_BLK_BLOBS = 3
_MAX_KEPT_STR = 4096
_MAX_STR = 1 << 30
ROWS_KEPT = 90  # per-table row counts kept for the manifest (its facts allow 100 entries per mapping)


class PgCustomValidator(ParsingValidator):
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
        self.compressed = True  # until the header says otherwise: then a data block's chunks are its rows
        self._data_tables: dict[int, str] = {}  # TABLE DATA entry -> its table's name
        self.rows: dict[str, int] = {}
        self._offset_fields: dict[int, int] = {}  # TOC entry -> stream offset of its data-offset field
        self._block_starts: dict[int, int] = {}  # TOC entry -> stream offset of its data block
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
        yield Skip(length)
        return ""

    def _parse(self) -> Parser:
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
        self._unpack_length = length_reader(int_size)
        if fmt != 1:
            raise InvalidDumpError(f"archive format {fmt} is not custom (1); use pg_dump --format=custom")
        if (vmaj, vmin) < (1, 12):
            raise InvalidDumpError(f"archive version {vmaj}.{vmin} is too old")
        if (vmaj, vmin) >= (1, 15):
            algorithm = yield 1  # compression algorithm
            self.compressed = algorithm != b"\x00"
        else:
            level = yield from self._int()  # compression level
            self.compressed = level != 0
        for _ in range(7):  # creation time fields
            yield from self._int()
        self.dbname = yield from self._str(keep=True)
        self.server_version = yield from self._str(keep=True)
        self.pg_dump_version = yield from self._str(keep=True)
        if (vmaj, vmin) > (1, 16):
            # a newer archive layout than this parser knows: header verified, the rest is skipped
            self.completeness_checked = False
            yield AT_BOUNDARY
            yield REST
        count = yield from self._int()
        if count < 0 or count > 10_000_000:
            raise InvalidDumpError(f"implausible TOC entry count {count}")
        for _ in range(count):
            yield from self._toc_entry()
        # data blocks until the end of the stream
        while True:
            yield AT_BOUNDARY
            block = yield 1
            assert block is not None  # noqa: S101
            block_start = self.position - 1
            dump_id = yield from self._int()
            if dump_id not in self._expected:
                raise InvalidDumpError(f"data block for unknown or data-less TOC entry {dump_id}")
            if dump_id in self._seen:
                raise InvalidDumpError(f"duplicate data block for TOC entry {dump_id}")
            self._seen.add(dump_id)
            self._block_starts[dump_id] = block_start
            self.data_blocks += 1
            if block[0] == _BLK_DATA:
                yield from self._chunks()
                if dump_id in self._data_tables and not self.compressed:
                    # every COPY row is one chunk, and the block ends with the end-of-data chunk "\\.\n\n\n"
                    self.rows[self._data_tables[dump_id]] = max(0, self.chunks_in_run - 1)
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
        yield CHUNK_RUN  # the driver's tight loop: one generator round trip per block, not per row

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
        self._offset_fields[dump_id] = self.position - (1 + self._off_size)
        flag = flag_and_offset[0]
        if flag not in (_K_OFFSET_POS_NOT_SET, _K_OFFSET_POS_SET, _K_OFFSET_NO_DATA):
            raise InvalidDumpError(f"bad data-offset flag {flag} in TOC entry {dump_id}")
        if had_dumper and flag != _K_OFFSET_NO_DATA:
            self._expected.add(dump_id)
        self.toc_entries += 1
        name = f"{namespace}.{tag}" if namespace else str(tag)
        if desc == "TABLE DATA":
            self._data_tables[dump_id] = name
        if desc == "TABLE":
            self.tables += 1
            if len(self.table_names) < 1000:
                self.table_names.append(name)

    def data_offsets(self) -> list[tuple[int, bytes]]:
        """(file offset, bytes) patches that set every data block's offset in the TOC, as pg_dump does
        for a seekable file; only for a whole, valid archive (after ``finish``)."""
        if not self.completeness_checked:
            return []
        return [
            (self._offset_fields[dump_id], bytes([_K_OFFSET_POS_SET]) + start.to_bytes(self._off_size, "little"))
            for dump_id, start in sorted(self._block_starts.items())
            if dump_id in self._offset_fields
        ]

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
            **self._row_facts(),
        }

    def _row_facts(self) -> dict[str, object]:
        if self.compressed or self.version is None or self.version[:2] > (1, 16):
            return {}
        largest = sorted(self.rows.items(), key=lambda item: (-item[1], item[0]))[:ROWS_KEPT]
        return {"rows": dict(sorted(largest)), "rows_total": sum(self.rows.values()), "rows_tables": len(self.rows)}
