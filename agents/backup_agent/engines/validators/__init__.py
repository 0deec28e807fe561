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
- ``TarValidator``: every 512-byte header's checksum, sizes (octal, base-256 or a pax ``size``
  record), member data and padding, each sparse file's map against its member (GNU PAX 1.0 and old
  GNU formats), and the end-of-archive marker (two zero blocks) followed only by zeros.
- ``NonEmptyValidator``: at least one byte, optionally a magic prefix (command engine).
- ``BaseBackupValidator`` (``pg_basebackup -Ft -D -``): every file's size and SHA-256 against the
  server's ``backup_manifest`` (read line by line, its own checksum verified), nothing missing or extra,
  only files and directories, the end-of-archive marker; yields the backup's WAL facts.
"""

from __future__ import annotations

from backup_agent.engines.validators.deferred import Deferred
from backup_agent.engines.validators.head_and_tail import MariaDBSqlValidator, NonEmptyValidator, SQLiteValidator
from backup_agent.engines.validators.pg_basebackup import BaseBackupValidator
from backup_agent.engines.validators.pg_custom import PgCustomValidator
from backup_agent.engines.validators.tar import TarValidator

__all__ = [
    "BaseBackupValidator",
    "Deferred",
    "MariaDBSqlValidator",
    "NonEmptyValidator",
    "PgCustomValidator",
    "SQLiteValidator",
    "TarValidator",
]
