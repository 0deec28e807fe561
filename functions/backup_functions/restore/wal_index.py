"""The WAL index of a point-in-time restore: written once to the bucket, fetched by the agent through a URL.

A restore may replay thousands of WAL files, each with its own presigned GET URL: far too many for an SQS
message (256 KiB). So the coordinator writes them as one ``WalIndex`` object at ``naming.wal_index_key(restore_id)``
(``restores/<restore_id>/wal-index.json``, under the coordinator's own prefix: SSE-KMS with the pipeline
key as the bucket's default, expired by the lifecycle after ``naming.RESTORE_OBJECTS_DAYS``) and the job carries
only a ``WalReplay``: how many files, the last one, the index's size and SHA-256; its URL is signed at each
send of the job (``ports.Courier``), like the base backup's.

Each file's URL is valid until the job's deadline plus ``owing.PRESIGN_MARGIN``, the same policy as the base
backup's URL. The index is written with ``If-None-Match: *``: a retried dispatch (a redelivered request, a
tick completing a drill) finds the object already there, reads it back and uses it as it is when it lists
the same files — so a job only ever names one index, whatever its URLs were signed at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from backup_contracts.jobs import WalReplay
from backup_contracts.naming import wal_index_key
from backup_contracts.wal import WalIndex, WalIndexEntry
from backup_functions.ledger.wal_items import WalFile
from backup_functions.restore.context import Context

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

INDEX_MAX_BYTES = 512 * 1024 * 1024


class IndexObjects(Protocol):
    """The coordinator's own objects under ``restores/``."""

    def create(self, bucket: str, key: str, body: bytes) -> bool:
        """Write ``body`` at ``key`` unless something is there already (then False, nothing written)."""
        ...

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        ...


class S3IndexObjects:
    """``IndexObjects`` on S3: a conditional PutObject (the bucket's default SSE-KMS key encrypts it)."""

    def __init__(self, s3: S3Client) -> None:
        self._s3 = s3

    def create(self, bucket: str, key: str, body: bytes) -> bool:
        try:
            self._s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                IfNoneMatch="*",
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise
        return True

    def get(self, bucket: str, key: str) -> bytes | None:
        try:
            return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read(INDEX_MAX_BYTES)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise


def _code(exc: ClientError) -> str:
    error = str(exc.response.get("Error", {}).get("Code", ""))
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return error if error not in ("", "None") else status


class IndexWriteError(RuntimeError):
    """An index already stored for this restore lists other files than the plan: never overwritten (the retry
    of a dispatch that planned differently, e.g. after the archive changed, fails loudly instead)."""


class IndexWriter:
    """Builds, stores and describes a restore's WAL index."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def write(
        self, restore_id: str, target: str, wal: dict[str, Any], files: Sequence[WalFile], valid_until: datetime
    ) -> WalReplay:
        """Store the index of ``files`` (once) and return the job's ``WalReplay`` for it (without its URL)."""
        objects = self.context.indexes
        if objects is None:
            raise IndexWriteError("the coordinator has no store for WAL indexes (context.indexes)")
        bucket, key = self.context.config.bucket, wal_index_key(restore_id)
        index = self._index(target, wal, files, valid_until)
        body = index.model_dump_json(exclude_none=True).encode()
        if not objects.create(bucket, key, body):
            body = objects.get(bucket, key) or b""
            index = self._accepted(restore_id, f"s3://{bucket}/{key}", body, index, wal)
        target_time = wal.get("recovery_target_time")
        return WalReplay(
            recovery_target=wal["recovery_target"],
            recovery_target_time=target_time,
            index_sha256=hashlib.sha256(body).hexdigest(),
            index_bytes=len(body),
            files=len(index.files),
            last_file=index.files[-1].name,
        )

    @staticmethod
    def _accepted(restore_id: str, where: str, body: bytes, planned: WalIndex, wal: dict[str, Any]) -> WalIndex:
        """The index an earlier attempt stored, when it is one this restore may replay: the same base backup's
        WAL and, for a time or immediate target, exactly the same files (an ``end`` target replays to the end of
        whatever the stored index lists: the archive may have grown since)."""
        if not body:
            raise IndexWriteError(f"{where} was refused as existing but cannot be read")
        stored = WalIndex.model_validate_json(body)
        same_base = (stored.target, stored.timeline, stored.start_file) == (
            planned.target,
            planned.timeline,
            planned.start_file,
        )
        same_files = _listing(stored) == _listing(planned)
        if not stored.files or not same_base or (wal["recovery_target"] != "end" and not same_files):
            raise IndexWriteError(f"{where} lists other WAL than restore {restore_id} plans; it is never replaced")
        return stored

    def _index(self, target: str, wal: dict[str, Any], files: Sequence[WalFile], valid_until: datetime) -> WalIndex:
        expires = int(max((valid_until - self.context.clock.now()).total_seconds(), 60))
        presign = self.context.objects.presign_get

        def url(row: WalFile) -> str:
            return presign(row.bucket, row.key, None, expires)

        return WalIndex(
            target=target,
            timeline=int(wal["timeline"]),
            start_file=str(wal["start_file"]),
            files=[
                WalIndexEntry(
                    name=row.file,
                    url=url(row),
                    sha256=row.sha256,
                    bytes_stored=row.bytes_stored,
                    compression=row.compression,
                )
                for row in files
            ],
        )


def _listing(index: WalIndex) -> list[tuple[str, str, int]]:
    """What must not differ between two indexes of one restore (their URLs may: signed at other times)."""
    return [(entry.name, entry.sha256, entry.bytes_stored) for entry in index.files]
