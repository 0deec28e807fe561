"""``wal-push``: one WAL file into the archive, compressed, encrypted and never replaced.

For each file: read it in 1 MiB chunks, hashing the raw bytes (SHA-256) and compressing them (zstd,
one thread, the agent's configured level) into memory; look up the journal; record a ``pending``
entry (fsync'd) *before* the upload; ``PutObject`` with SSE-KMS under the agent's key, S3's own
``ChecksumSHA256`` of the body, the checksums and file name in the object's metadata, and
``If-None-Match: *`` so an archived name is never overwritten; then mark the entry ``stored`` and
keep its ``WAL Archived`` event as owed until the bus confirmed it.

A retry after a crash or kill, at any point, loses and duplicates nothing:

- journal ``stored`` with the same raw SHA-256: already archived; nothing is uploaded;
- the upload answers 412 (the name is taken) and the journal's entry has the same raw SHA-256: an
  earlier attempt of this host stored it (killed after S3 stored it, before the journal said so);
- 412 and a different raw SHA-256, or 412 and no entry at all: the archive holds something else under
  that name (two servers archiving into one target): an error, the file is never overwritten, and the
  entry becomes ``refused`` so every retry refuses too.

One window no local journal can close: a kill between a 412 answer and the ``refused`` entry lets the
retry take the other server's object for its own. Its ``WAL Archived`` event then carries this host's
SHA-256, which the audit compares with the stored object's before the file counts.

Speed: PostgreSQL runs ``archive_command`` once per file, one at a time, so a process start (~0.25 s
here, mostly imports) bounds a file-at-a-time archiver (~3.5 files/s). When it asks for a file not
stored yet, the agent also pushes the next files the server has already marked ready
(``archive_status/*.ready``), ``parallel`` at once in all, and marks each but the newest done
(``.ready`` → ``.done``) once it is stored, so PostgreSQL skips it (``_mark_done``). The call for the
newest (and for any other after a crash before the rename) finds the journal saying ``stored``, only
re-hashes the file and exits 0 without a client, an upload or an event (sent once, by the call that
stored it); ``pg_stat_archiver.last_archived_wal`` then names the newest archived file, as it should.

Memory stays ~ ``parallel`` x (one compressed segment, at most 32 MiB, + 1 MiB): larger compressed
files (segments of 64 MiB and up) spill into an unnamed temporary file in the journal's directory.
Measured (a 464 MiB burst into moto on 2 cores): 2.2 segments/s one at a time, 4.6 with ``parallel`` 4,
6.5 with 8 (8.4 when the newest is marked done too, at the cost of a pg_stat_archiver that lags);
``cp`` keeps up with the writer at ~14.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import zstandard
from botocore.exceptions import ClientError

from backup_agent.config import AgentConfig
from backup_agent.wal.journal import PRUNE_EVERY, Entry, WalJournal
from backup_agent.wal.prepare import Prepared, WalPushError, prepare, wal_compressor
from backup_contracts.naming import wal_object_key
from backup_contracts.wal import WalArchived, is_segment, is_wal_file, parse_segment

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)

DEFAULT_PARALLEL = 4  # files pushed at once: the one asked for and up to 3 already marked ready
PARALLEL_MAX = 8
STATUS_DIR = "archive_status"


@dataclass
class Pushed:
    """What one push did: ``event`` is the file's ``WAL Archived``; ``uploaded``: this call stored it."""

    name: str
    event: WalArchived | None = None
    uploaded: bool = False
    already: bool = False
    error: str | None = None


@dataclass
class PushReport:
    asked: Pushed
    ahead: list[Pushed] = field(default_factory=list)

    @property
    def all(self) -> list[Pushed]:
        return [self.asked, *self.ahead]


class WalPusher:
    """Pushes WAL files of one target; ``push`` returns once the file asked for is stored (or not)."""

    def __init__(
        self,
        config: AgentConfig,
        target: str,
        *,
        s3: Callable[[], S3Client],
        journal: WalJournal,
        parallel: int = DEFAULT_PARALLEL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if config.bucket is None:
            raise WalPushError(
                "the agent config has no `bucket:`, so wal-push does not know where the archive is. Fix: set"
                " `bucket:` to the pipeline's bucket (stack output BucketName)"
            )
        self.config = config
        self.bucket: str = config.bucket
        self.target = target
        self._s3_factory = s3
        self._s3: S3Client | None = None
        self._s3_lock = threading.Lock()
        self.journal = journal
        self.parallel = max(1, min(parallel, PARALLEL_MAX))
        self.clock = clock
        self.compressor_of: Callable[[], zstandard.ZstdCompressor] = lambda: wal_compressor(config)
        self.compression = config.compression.describe()

    @property
    def s3(self) -> S3Client:
        """The S3 client, created at the first upload: a call that finds its file stored needs none."""
        with self._s3_lock:
            if self._s3 is None:
                self._s3 = self._s3_factory()
            return self._s3

    # ------------------------------------------------------------------ many files
    def push(self, path: Path) -> PushReport:
        """Push ``path``; meanwhile push up to ``parallel - 1`` other files the server marked ready."""
        name = path.name
        if not is_wal_file(name):
            raise WalPushError(
                f"{path}: {name!r} is not a WAL file name. Fix: archive_command must pass %p, e.g."
                " `backup-agent wal-push --target T %p`"
            )
        if not path.is_file():
            raise WalPushError(
                f"{path}: no such WAL file. Fix: archive_command must pass %p (the path PostgreSQL gives, relative"
                " to the data directory), e.g. `backup-agent wal-push --target T %p`"
            )
        entry = self.journal.get(name)
        if entry is not None and entry.state == "stored":  # pushed ahead by an earlier call: confirm, add nothing
            return PushReport(self._push_one(path))
        ahead = self.ready_ahead(path) if self.parallel > 1 else []
        self._maybe_prune(name)
        if not ahead:
            return PushReport(self._push_one(path))
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="wal-push") as pool:
            futures = [pool.submit(self._push_other, p) for p in ahead]
            asked = self._push_one(path)
            report = PushReport(asked, [future.result() for future in futures])
        for pushed in report.ahead[:-1]:  # the newest is left to its own call: pg_stat_archiver then names it
            if pushed.event is not None:
                _mark_done(path.parent / STATUS_DIR, pushed.name)
        return report

    def ready_ahead(self, path: Path) -> list[Path]:
        """Files other than ``path`` that the server marked ready and this host has not stored yet,
        in the order PostgreSQL archives them (history files first, then the oldest segment)."""
        status = path.parent / STATUS_DIR
        try:
            names = [p.name[: -len(".ready")] for p in status.iterdir() if p.name.endswith(".ready")]
        except OSError:
            return []
        chosen: list[Path] = []
        for other in sorted(names, key=lambda n: (not n.endswith(".history"), n)):
            if other == path.name or not is_wal_file(other):
                continue
            entry = self.journal.get(other)
            if entry is not None and entry.state == "stored":
                continue
            chosen.append(path.parent / other)
            if len(chosen) == self.parallel - 1:
                break
        return chosen

    def _push_other(self, path: Path) -> Pushed:
        try:
            return self._push_one(path)
        except Exception as exc:  # noqa: BLE001 - a file pushed ahead is retried by its own call
            log.warning("pushing %s ahead failed (its own archive_command call retries it): %s", path.name, exc)
            return Pushed(path.name, error=str(exc))

    def _maybe_prune(self, name: str) -> None:
        if is_segment(name) and parse_segment(name).number % PRUNE_EVERY == 0:
            self.journal.prune()
            self.journal.clean()

    # ------------------------------------------------------------------ one file
    def _push_one(self, path: Path) -> Pushed:
        previous = self.journal.get(path.name)
        stored_before = previous is not None and previous.state == "stored"
        compressor = None if stored_before else self.compressor_of()  # stored: the raw hash decides
        prepared = prepare(path, compressor, self.journal.root)
        try:
            return self._store(prepared, previous)
        finally:
            prepared.body.close()

    def _store(self, prepared: Prepared, previous: Entry | None) -> Pushed:
        t0 = time.monotonic()
        key = wal_object_key(self.config.agent, self.target, prepared.name)
        if previous is not None and previous.state == "stored":
            if previous.raw_sha256 == prepared.raw_sha256:
                return Pushed(prepared.name, self._event(previous, previous.recorded_at), already=True)
            raise WalPushError(self._different(prepared, previous, key))
        pending = Entry(
            file=prepared.name,
            state="pending",
            raw_sha256=prepared.raw_sha256,
            sha256=prepared.sha256,
            bytes_in=prepared.bytes_in,
            bytes_stored=prepared.bytes_stored,
            key=key,
            compression=self.compression,
        )
        if previous is None:
            pending = self.journal.record(pending)  # before the upload: what a retry after a kill relies on
        if self._put(prepared, key):
            stored, uploaded = self.journal.record(pending.stored()), True
        elif previous is None or previous.state == "refused":
            if previous is None:  # a retry must refuse too, not take this call's entry for an earlier upload
                self.journal.record(replace(pending, state="refused"))
            raise WalPushError(self.taken_by_another(prepared.name))
        elif previous.raw_sha256 == prepared.raw_sha256:
            log.info("%s was stored by an earlier attempt (its journal entry has the same SHA-256)", prepared.name)
            stored, uploaded = self.journal.record(previous.stored()), False
        else:
            raise WalPushError(self._different(prepared, previous, key))
        event = self._event(stored, stored.recorded_at if uploaded or previous is None else previous.recorded_at)
        self.journal.owe(prepared.name, event.model_dump(mode="json"))
        log.info(
            "archived %s: %d bytes, %d stored in %.2f s",
            prepared.name,
            prepared.bytes_in,
            stored.bytes_stored,
            time.monotonic() - t0,
            extra={"ctx_target": self.target, "ctx_key": key},
        )
        return Pushed(prepared.name, event, uploaded=uploaded)

    def _put(self, prepared: Prepared, key: str) -> bool:
        """Store the object; False when the name is already taken (412)."""
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=prepared.body,
                ContentType="application/zstd",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self.config.kms_key_id,
                ChecksumSHA256=prepared.checksum_b64,  # S3 refuses the body unless it has this SHA-256
                ChecksumAlgorithm="SHA256",
                Metadata={
                    "wal-file": prepared.name,
                    "sha256": prepared.sha256,
                    "raw-sha256": prepared.raw_sha256,
                    "bytes-in": str(prepared.bytes_in),
                    "compression": self.compression,
                },
                IfNoneMatch="*",  # an archived WAL file is never replaced (the bucket policy requires it)
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "PreconditionFailed" or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412:
                return False
            raise WalPushError(f"cannot store {prepared.name} at s3://{self.bucket}/{key}: {exc}") from exc
        except Exception as exc:
            raise WalPushError(f"cannot store {prepared.name} at s3://{self.bucket}/{key}: {exc}") from exc
        return True

    def _event(self, entry: Entry, archived_at: str) -> WalArchived:
        return WalArchived(
            agent=self.config.agent,
            target=self.target,
            file=entry.file,
            bucket=self.bucket,
            key=entry.key,
            sha256=entry.sha256,
            bytes_in=entry.bytes_in,
            bytes_stored=entry.bytes_stored,
            compression=entry.compression,
            archived_at=_parse_time(archived_at) or self.clock(),
        )

    # ------------------------------------------------------------------ refusals
    def _different(self, prepared: Prepared, entry: Entry, key: str) -> str:
        return (
            f"the archive already holds {prepared.name} (s3://{self.bucket}/{key}) with different contents: this"
            f" host archived it at {entry.recorded_at} from a file with SHA-256 {entry.raw_sha256}, the server's"
            f" file now has {prepared.raw_sha256}. An archived WAL file is never replaced, so archiving stops"
            f" here. Two servers are archiving into target {self.target!r} (a restored copy of the cluster, or"
            " a cluster re-initialised in its place). Fix: give the other server its own target (its"
            " archive_command's --target) or archive_mode = off; a re-initialised cluster needs a new target"
            " and a new base backup"
        )

    def taken_by_another(self, name: str) -> str:
        key = wal_object_key(self.config.agent, self.target, name)
        return (
            f"the archive already holds {name} (s3://{self.bucket}/{key}), but this host never archived it (no"
            f" entry in {self.journal.entries}): another server archives into target {self.target!r} (e.g. a"
            " restored copy pushing into its source's archive, or the target configured on two hosts). An"
            " archived WAL file is never replaced, so archiving stops here. Fix: point the other server's"
            " archive_command at its own target (a restored copy: archive_mode = off), or give this server a"
            " new target name and take a base backup of it"
        )


def _mark_done(status: Path, name: str) -> None:
    """Tell PostgreSQL a file pushed ahead is archived (``.ready`` → ``.done``, as its archiver does after a
    successful archive_command; WAL-G's concurrent wal-push does the same). Its archiver re-checks each
    ``.ready`` before archiving it, so it skips the file instead of starting a process that would only
    confirm it. Only once the journal says stored: a crash before the rename costs one confirming call."""
    try:
        os.replace(status / f"{name}.ready", status / f"{name}.done")
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.info("cannot mark %s done (PostgreSQL asks for it once more, and it is confirmed): %s", name, exc)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
