"""Stages 2 and 3 of a restore: the backup object into a private spool file, checked against its run.

The object is streamed from the presigned URL (the agent has no standing read permission; the URL is
for exactly that object version) into a spool file in a private directory, hashing every byte
(SHA-256) and counting them while it is written. Disk use = the object's stored (compressed) size;
memory stays one chunk. A transient HTTP error (5xx, 429, a network error) is retried; size and
SHA-256 must then equal the run's, or nothing goes further. The spool directory is removed at the
end, whatever happens.

For an engine that restores from a seekable file (PostgreSQL: ``pg_restore --jobs``), the bytes are
decompressed as they arrive (``RawArchive``) and the raw dump is written instead, checked by the
engine's format validator on the way: one pass overlaps download, hashing, decompression and
validation, and disk use is the dump's raw size. The SHA-256 is still of the stored bytes, and
nothing is restored unless it, the size and the format all check out.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from backup_agent.engines.base import InvalidDumpError, StreamValidator
from backup_agent.engines.database import VerifiedArchive
from backup_agent.engines.validators import PgCustomValidator
from backup_agent.presigned import (
    DOWNLOAD_ATTEMPTS,
    DOWNLOAD_ERRORS,
    DOWNLOAD_TIMEOUT_S,
    Opener,
    describe_error,
    retry_delay_s,
    retryable,
    safe_url,
)
from backup_agent.restore.failure import INTERRUPTED, RestoreFailure
from backup_contracts.jobs import RestoreSource

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
SPOOL_HEADROOM = 64 * 1024 * 1024  # free disk kept beyond the object's size


def default_spool_dir(state_dir: Path) -> Path:
    candidate = Path(state_dir) / "spool"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        if os.access(candidate, os.W_OK):
            return candidate
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "backup-agent-spool"


@contextlib.contextmanager
def spool_file(base: Path, need: int) -> Iterator[Path]:
    """A path for the object in a fresh 0700 directory below ``base``, removed on exit; refuses to
    start when the disk has no room for ``need`` bytes."""
    base.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(base).free
    if free < need + SPOOL_HEADROOM:
        raise RestoreFailure(
            "download",
            f"not enough free disk in {base} for the object: {need} bytes needed (+64 MiB), {free} free",
        )
    directory = Path(tempfile.mkdtemp(prefix="restore-", dir=base))  # 0700
    try:
        yield directory / "object"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class RawArchive:
    """Writes the raw dump (the object decompressed) to a file as the object's bytes arrive, and feeds
    it to the engine's format validator; ``verified`` hands it over once everything checked out."""

    def __init__(self, path: Path, compression: str, new_validator: Callable[[], StreamValidator]) -> None:
        if not compression.lower().startswith("zstd"):
            raise RestoreFailure("restore", f"unsupported compression {compression!r} for a seekable restore")
        self.path = path
        self._new_validator = new_validator
        self.validator = new_validator()
        self.problem: str | None = None
        self._file: BinaryIO | None = None
        self._writer: Any = None

    def start(self) -> None:
        """(Re)start from the object's first byte: a retried download writes the file anew."""
        self.close()
        self.validator = self._new_validator()
        self.problem = None
        self._file = self.path.open("wb")
        tee: Any = _Tee(self._file, self.validator)  # a writable file-like object is all zstd needs
        self._writer = zstandard.ZstdDecompressor().stream_writer(tee, closefd=False)

    def write(self, chunk: bytes) -> None:
        if self.problem is not None:
            return  # keep hashing: a changed object is reported as such, not as undecompressable
        try:
            self._writer.write(chunk)
        except zstandard.ZstdError as exc:
            self.problem = f"the backup does not decompress: {exc}"
        except InvalidDumpError as exc:
            self.problem = f"the backup is not a valid dump: {exc}"

    def verified(self) -> VerifiedArchive:
        """The raw archive, once the object's size and SHA-256 were found right; refused when it did
        not decompress completely or the validator rejects it."""
        if self.problem is None:
            try:
                self._writer.flush()
                self.validator.finish()
            except zstandard.ZstdError as exc:
                self.problem = f"the backup does not decompress: {exc}"
            except InvalidDumpError as exc:
                self.problem = f"the backup is not a valid dump: {exc}"
        self.close()
        if self.problem is not None:
            raise RestoreFailure("verify-object", f"{self.problem}; refusing to restore it (destination untouched)")
        self._set_data_offsets()
        return VerifiedArchive(self.path, self.validator)

    def _set_data_offsets(self) -> None:
        """Write the data blocks' offsets into the archive's TOC where the validator found them (a
        pg_dump archive from a pipe has none), so each parallel restore job seeks to its blocks."""
        if not isinstance(self.validator, PgCustomValidator):
            return
        patches = self.validator.data_offsets()
        with self.path.open("r+b") as file:
            for offset, data in patches:
                file.seek(offset)
                file.write(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Tee:
    """The decompressor's output: into the validator and the file."""

    def __init__(self, file: BinaryIO, validator: StreamValidator) -> None:
        self._file = file
        self._validator = validator

    def write(self, data: bytes) -> int:
        self._validator.feed(data)
        return self._file.write(data)


def download_verified(
    source: RestoreSource,
    spool: Path,
    *,
    opener: Opener,
    cancel: threading.Event,
    restore_id: str,
    raw: RawArchive | None = None,
) -> None:
    """Fetch the object into ``spool`` (or, given ``raw``, decompressed into its file), retrying
    transient errors, and check its size and SHA-256."""
    assert source.presigned_url is not None  # noqa: S101 - the run checked the job first
    url = str(source.presigned_url)
    last_error = ""
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            digest, size = _fetch(url, spool, opener=opener, cancel=cancel, limit=source.bytes_stored, raw=raw)
        except RestoreFailure:
            raise
        except DOWNLOAD_ERRORS as exc:
            last_error = describe_error(exc)
            log.warning(
                "download attempt %d of %s failed: %s",
                attempt,
                safe_url(url),
                last_error,
                extra={"ctx_restore": restore_id},
            )
            if not retryable(exc):
                break
            time.sleep(retry_delay_s(attempt))
            continue
        _verify_object(source, size, digest)
        return
    raise RestoreFailure("download", f"cannot download the backup object {safe_url(url)}: {last_error}")


def _fetch(
    url: str, spool: Path, *, opener: Opener, cancel: threading.Event, limit: int, raw: RawArchive | None
) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    if raw is not None:
        raw.start()
    with opener(url, DOWNLOAD_TIMEOUT_S) as response, contextlib.ExitStack() as files:
        out = raw if raw is not None else files.enter_context(spool.open("wb"))
        for chunk in files.enter_context(_read_ahead(response)):
            if cancel.is_set():
                raise RestoreFailure("download", INTERRUPTED)
            size += len(chunk)
            if size > limit:  # never spool more than the run recorded: a bigger object is wrong anyway
                raise RestoreFailure(
                    "verify-object",
                    f"the object is larger than the {limit} bytes the backup run recorded:"
                    " refusing to restore it (destination untouched)",
                )
            sha.update(chunk)
            out.write(chunk)
    return sha.hexdigest(), size


READ_AHEAD_CHUNKS = 4  # chunks the network may run ahead of the hashing/decompressing (4 MiB of memory)


@contextlib.contextmanager
def _read_ahead(response: BinaryIO) -> Iterator[Iterator[bytes]]:
    """The response's chunks, read by a thread of their own so the network overlaps the hashing,
    decompression and writing; a read error is raised where the chunk would have been."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=READ_AHEAD_CHUNKS)
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                chunk = response.read(CHUNK)
                _put(chunks, chunk or None, stop)
                if not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            _put(chunks, exc, stop)

    def consume() -> Iterator[bytes]:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    reader = threading.Thread(target=read, name="restore-download", daemon=True)
    reader.start()
    try:
        yield consume()
    finally:
        stop.set()  # the reader ends at its next chunk, or when the response is closed under it


def _put(
    chunks: queue.Queue[bytes | BaseException | None], item: bytes | BaseException | None, stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.5)
            return
        except queue.Full:
            continue


def _verify_object(source: RestoreSource, size: int, digest: str) -> None:
    if size != source.bytes_stored:
        raise RestoreFailure(
            "verify-object",
            f"the object has {size} bytes, the backup run recorded {source.bytes_stored}:"
            " refusing to restore it (destination untouched)",
        )
    if digest != source.sha256:
        raise RestoreFailure(
            "verify-object",
            f"the object's SHA-256 is {digest}, the backup run recorded {source.sha256}:"
            " the object was changed or corrupted; refusing to restore it (destination untouched)",
        )
