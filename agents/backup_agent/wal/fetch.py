"""``wal-fetch``: PostgreSQL's ``restore_command`` during a point-in-time restore.

``backup-agent wal-fetch --index /private/dir/wal-index.json %f %p``: the index is the ``WalIndex``
the restore job pointed at (downloaded and checked against the job's SHA-256 by the restore executor,
``backup_agent.restore.wal_replay``). For a name:

- not in the index: exit 1, quietly. PostgreSQL asks for names beyond the end of the archive and for
  timeline history files that may not exist; "not there" is its normal end of recovery;
- in the index: GET it through its own presigned URL (retrying transient errors, as restores do),
  check the stored bytes' size and SHA-256, decompress, check a segment's size, and write ``%p``
  atomically (a temporary file in the same directory, then a rename): exit 0;
- in the index but not fetchable or not right (expired URL, changed or truncated object, bad
  compression): exit 200, which makes PostgreSQL abort the recovery (any exit above 125 does) rather
  than take the file for the end of the archive and start early with less data. Never a bad file. (Not
  126 or 127: the server's log would call those "command not executable" and "command not found".)

Speed: recovery asks for one file at a time. When a file is not in the cache yet, it is fetched with the
next ``prefetch`` files of the index, ``parallel`` downloads at once, into ``cache/`` beside the index
(each checked before it is kept, decompressed a chunk at a time), so the next calls are served from disk
— by the restore's ``restore_command`` itself, which moves a cached file into place without starting an
interpreter (``backup_agent.restore.wal_replay.recovery_for``). Disk: at most ``prefetch`` + 1
decompressed files; memory: ``parallel`` compressed files. Measured (32 segments from moto, one call at
a time as recovery makes them): 3.5 segments/s through ``backup-agent wal-fetch`` alone, 15.6 through
the restore_command with the default prefetch of 7, 20 with 15.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import zstandard
from pydantic import ValidationError

from backup_agent.presigned import (
    DOWNLOAD_ATTEMPTS,
    DOWNLOAD_ERRORS,
    DOWNLOAD_TIMEOUT_S,
    Opener,
    describe_error,
    open_url,
    retry_delay_s,
    retryable,
    safe_url,
)
from backup_contracts.wal import WalIndex, WalIndexEntry, is_segment, is_wal_file

log = logging.getLogger(__name__)

PREFETCH = 7
PARALLEL = 4
CACHE_DIR = "cache"
CHUNK = 1 << 20
SEGMENT_MIN, SEGMENT_MAX = 1 << 20, 1 << 30  # initdb --wal-segsize: a power of two, 1 MiB to 1 GiB


class WalFetchError(Exception):
    """The file is in the index but cannot be handed to PostgreSQL; the message names the fix."""


class DownloadError(Exception):
    """A presigned GET failed after its retries (or at once, for a refusal that retrying cannot fix)."""


def fetch_bytes(url: str, limit: int, *, opener: Opener = open_url, attempts: int = DOWNLOAD_ATTEMPTS) -> bytes:
    """GET ``url`` (at most ``limit`` + 1 bytes are read), retrying 5xx, 429 and network errors."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            with opener(url, DOWNLOAD_TIMEOUT_S) as response:
                return response.read(limit + 1)
        except DOWNLOAD_ERRORS as exc:
            last = describe_error(exc)
            if not retryable(exc):
                break
            log.warning("GET %s failed (attempt %d of %d): %s", safe_url(url), attempt, attempts, last)
            if attempt < attempts:
                time.sleep(retry_delay_s(attempt))
    raise DownloadError(f"cannot download {safe_url(url)}: {last}")


def load_index(path: Path) -> WalIndex:
    try:
        return WalIndex.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise WalFetchError(
            f"cannot read the WAL index {path}: {exc.strerror}. Fix: restore_command must name the index the"
            " restore wrote (backup-agent writes it; run the restore again)"
        ) from exc
    except ValidationError as exc:
        raise WalFetchError(f"{path} is not a WAL index: {exc.error_count()} problem(s): {exc}") from exc


def check_stored(entry: WalIndexEntry, body: bytes) -> None:
    """Refuse the stored bytes unless they are exactly what the archive recorded."""
    if len(body) != entry.bytes_stored:
        raise WalFetchError(
            f"{entry.name}: the archived object has {len(body)}{'+' if len(body) > entry.bytes_stored else ''}"
            f" bytes, the archive recorded {entry.bytes_stored}: refusing to hand it to PostgreSQL"
        )
    digest = hashlib.sha256(body).hexdigest()
    if digest != entry.sha256:
        raise WalFetchError(
            f"{entry.name}: the archived object's SHA-256 is {digest}, the archive recorded {entry.sha256}: the"
            " object was changed or corrupted; refusing to hand it to PostgreSQL"
        )


def write_checked(entry: WalIndexEntry, body: bytes, path: Path) -> None:
    """Check the stored bytes, decompress them into a temporary file beside ``path`` (one chunk in memory
    at a time), check a segment's size, and rename it to ``path``; nothing is left behind otherwise."""
    check_stored(entry, body)
    compression = entry.compression.lower()
    if not compression.startswith("zstd") and compression not in ("", "none", "identity"):
        raise WalFetchError(f"{entry.name}: unsupported compression {entry.compression!r}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.fetch.tmp")
    try:
        with tmp.open("wb") as file:
            if compression.startswith("zstd"):
                with zstandard.ZstdDecompressor().stream_writer(file, closefd=False) as writer:
                    for start in range(0, len(body), CHUNK):
                        writer.write(body[start : start + CHUNK])
            else:
                file.write(body)
            size = file.tell()
            file.flush()
            os.fsync(file.fileno())
        if is_segment(entry.name) and not (SEGMENT_MIN <= size <= SEGMENT_MAX and size & (size - 1) == 0):
            raise WalFetchError(f"{entry.name}: {size} bytes is no WAL segment size (a power of two, 1 MiB to 1 GiB)")
        os.replace(tmp, path)
    except zstandard.ZstdError as exc:
        raise WalFetchError(f"{entry.name}: the archived object does not decompress: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


class WalFetcher:
    def __init__(
        self, index_path: Path, *, opener: Opener = open_url, prefetch: int = PREFETCH, parallel: int = PARALLEL
    ) -> None:
        self.index_path = index_path
        self.index = load_index(index_path)
        self.position = {entry.name: i for i, entry in enumerate(self.index.files)}
        self.cache = index_path.parent / CACHE_DIR
        self.opener = opener
        self.prefetch = max(0, prefetch)
        self.parallel = max(1, parallel)

    def fetch(self, name: str, dest: Path) -> bool:
        """Write ``name`` to ``dest``; False when the index does not list it."""
        if not is_wal_file(name) or name not in self.position:
            return False
        where = self.position[name]
        cached = self.cache / name
        if not cached.exists():
            self._fill(where)
        self._hand_over(cached, dest)
        self._drop_older(where)
        return True

    def _fill(self, where: int) -> None:
        """Fetch the file at ``where`` and the next ``prefetch`` not cached yet; raise for the first only."""
        self.cache.mkdir(mode=0o700, exist_ok=True)
        window = self.index.files[where : where + 1 + self.prefetch]
        wanted = [e for i, e in enumerate(window) if i == 0 or not (self.cache / e.name).exists()]
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(wanted))) as pool:
            futures = [pool.submit(self._to_cache, entry) for entry in wanted]
            for i, future in enumerate(futures):
                try:
                    future.result()
                except (WalFetchError, DownloadError) as exc:
                    if i == 0:
                        raise WalFetchError(str(exc)) from exc
                    log.info("prefetching %s failed (fetched again when asked for): %s", wanted[i].name, exc)

    def _to_cache(self, entry: WalIndexEntry) -> None:
        body = fetch_bytes(str(entry.url), entry.bytes_stored, opener=self.opener)
        write_checked(entry, body, self.cache / entry.name)

    def _hand_over(self, cached: Path, dest: Path) -> None:
        """Move the checked file to ``dest`` atomically (a copy in dest's directory when across filesystems)."""
        try:
            os.replace(cached, dest)
            return
        except OSError:
            pass
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.fetch.tmp")
        try:
            shutil.copyfile(cached, tmp)
            with tmp.open("rb+") as file:
                os.fsync(file.fileno())
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        with contextlib.suppress(OSError):
            cached.unlink()

    def _drop_older(self, where: int) -> None:
        """Recovery moves forward: cached files before this one are not asked for again."""
        with contextlib.suppress(OSError):
            for path in self.cache.iterdir():
                at = self.position.get(path.name)
                if at is not None and at < where:
                    path.unlink()
