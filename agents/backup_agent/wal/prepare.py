"""One WAL file read for ``wal-push``: hashed as PostgreSQL wrote it, compressed, hashed as stored.

The compressed bytes stay in memory up to ``SPOOL_IN_MEMORY`` (a 16 MiB segment's always do), beyond that
in an unnamed temporary file: memory stays bounded whatever the segment size (``initdb --wal-segsize``).
zstd runs single-threaded at the agent's level (or its tuned parameters): deterministic output, and the
parallelism comes from pushing several files at once (``backup_agent.wal.push``).
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from backup_agent.config import DUMP_TUNED_ZSTD, AgentConfig

CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 32 * 1024 * 1024  # compressed bytes kept in memory per file; beyond, an unnamed temp file


class WalPushError(Exception):
    """The file is not archived (and must not count as archived); the message names the fix."""


@dataclass(frozen=True)
class Prepared:
    """One WAL file read, hashed and compressed, ready to store."""

    name: str
    raw_sha256: str
    bytes_in: int
    body: BinaryIO  # the compressed bytes: in memory up to SPOOL_IN_MEMORY, then in an unnamed file
    bytes_stored: int
    sha256: str

    @property
    def checksum_b64(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")


def wal_compressor(config: AgentConfig) -> zstandard.ZstdCompressor:
    """Single-threaded zstd at the agent's level (or its tuned parameters): deterministic output, and
    the parallelism comes from pushing several files at once."""
    level = config.compression.level
    params = zstandard.ZstdCompressionParameters
    made = (
        params(**DUMP_TUNED_ZSTD, write_checksum=True)
        if level is None
        else params.from_level(level, write_checksum=True)
    )
    return zstandard.ZstdCompressor(compression_params=made)


def prepare(path: Path, compressor: zstandard.ZstdCompressor | None, spool_dir: Path | None = None) -> Prepared:
    """Read, hash and (given a compressor) compress one WAL file; without one only its raw SHA-256 counts.
    The compressed bytes stay in memory up to ``SPOOL_IN_MEMORY`` (a 16 MiB segment always does), beyond
    that in an unnamed temporary file in ``spool_dir``: memory stays bounded whatever the segment size."""
    raw, stored = hashlib.sha256(), hashlib.sha256()
    spill = str(spool_dir) if spool_dir else None
    body: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY, dir=spill)  # noqa: SIM115 - returned
    size = 0
    stream = compressor.compressobj() if compressor is not None else None

    def out(data: bytes) -> None:
        stored.update(data)
        body.write(data)

    try:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                raw.update(chunk)
                size += len(chunk)
                if stream is not None:
                    out(stream.compress(chunk))
    except FileNotFoundError as exc:
        body.close()
        raise WalPushError(
            f"{path}: no such WAL file. Fix: archive_command must pass %p (the path PostgreSQL gives, relative"
            " to the data directory), e.g. `backup-agent wal-push --target T %p`"
        ) from exc
    except OSError as exc:
        body.close()
        raise WalPushError(
            f"cannot read the WAL file {path}: {exc.strerror}. Fix: run wal-push as the server's OS user"
        ) from exc
    if stream is not None:
        out(stream.flush())
    stored_size = body.tell()
    body.seek(0)
    return Prepared(path.name, raw.hexdigest(), size, body, stored_size, stored.hexdigest())
