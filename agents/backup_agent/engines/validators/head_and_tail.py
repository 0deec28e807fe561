"""Validators that judge a stream by its head, its tail and its length, without parsing what is between.

``MariaDBSqlValidator`` (which also collects the ``CREATE TABLE`` names on the way), ``SQLiteValidator``
and ``NonEmptyValidator`` (the command engine's).
"""

from __future__ import annotations

import re

from backup_agent.engines.base import Chunk, InvalidDumpError

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
