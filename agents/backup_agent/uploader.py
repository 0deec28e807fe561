"""S3 multipart upload with SSE-KMS, per-part SHA-256 checksums, growing parts and bounded memory.

The upload sets no tags (retention tags are the audit's, after it has verified the object) and completes
only as a new object (``If-None-Match: *``): an agent never replaces what is stored.

Part-size schedule (``part_size``, the minimum size of each part; the pipeline cuts a part at the
first compressed-output boundary past it, i.e. at most ~128 KiB larger): 6 MiB for parts 1-1000,
then the size doubles every 1000 parts (12 MiB, 24 MiB, ... 3 GiB for parts 9001-10000). 10,000
parts therefore cover 1000 x 6 MiB x (2^10 - 1) ~ 5.9 TiB >= S3's 5 TiB object limit (5 MiB parts
would fall just short), no part exceeds 5 GiB, and every dump below ~5.9 GiB stored bytes uses 6 MiB
parts, so memory stays ~ parts_in_flight x 6 MiB.

``PartSink`` is what zstd writes into: it hashes the compressed bytes and cuts them into those parts.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CompleteMultipartUploadOutputTypeDef

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
S3_MIN_PART = 5 * MiB
S3_MAX_PART = 5 * GiB
S3_MAX_PARTS = 10_000
S3_MAX_OBJECT = 5 * TiB

BASE_PART_SIZE = 6 * MiB
PARTS_PER_STEP = 1000
ZSTD_PIECE_ROOM = 256 * 1024  # > zstd's output piece (ZSTD_CStreamOutSize, 128 KiB + a block header)


def part_size(part_number: int) -> int:
    """Size of part ``part_number`` (1-based): 6 MiB, doubling every 1000 parts."""
    if not 1 <= part_number <= S3_MAX_PARTS:
        raise ValueError(f"part number {part_number} outside 1..{S3_MAX_PARTS}")
    return BASE_PART_SIZE << ((part_number - 1) // PARTS_PER_STEP)


class UploadError(Exception):
    """The multipart upload failed (after botocore's retries); the upload must be aborted."""


def _b64sha256(data: bytes | bytearray) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def composite_checksum(part_checksums: list[str]) -> str:
    """S3's COMPOSITE SHA-256 of a multipart object: base64(sha256(part digests)) + "-<parts>". The
    audit compares it with what S3 reports, so it knows S3 stored exactly the bytes the agent hashed."""
    digests = b"".join(base64.b64decode(checksum) for checksum in part_checksums)
    return f"{_b64sha256(digests)}-{len(part_checksums)}"


class MultipartUpload:
    """One multipart upload. ``submit`` blocks while ``parts_in_flight`` parts are uploading."""

    def __init__(
        self,
        s3: S3Client,
        *,
        bucket: str,
        key: str,
        kms_key_id: str,
        metadata: dict[str, str],
        parts_in_flight: int = 4,
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self._kms_key_id = kms_key_id
        self._metadata = metadata
        self._slots = threading.BoundedSemaphore(parts_in_flight)
        self._pool = ThreadPoolExecutor(max_workers=parts_in_flight, thread_name_prefix="upload-part")
        self._futures: list[Future[CompletedPartTypeDef]] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self.upload_id: str | None = None
        self.next_part = 1
        self.bytes_sent = 0
        self.composite_sha256: str | None = None  # S3's checksum-of-part-checksums, set by complete()

    @property
    def failed(self) -> BaseException | None:
        return self._error

    def start(self) -> None:
        try:
            response = self._s3.create_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=self._kms_key_id,
                Metadata=self._metadata,
                ChecksumAlgorithm="SHA256",
                ContentType="application/zstd",
            )
        except Exception as exc:
            raise UploadError(f"cannot start the multipart upload of s3://{self.bucket}/{self.key}: {exc}") from exc
        self.upload_id = response["UploadId"]

    def current_part_size(self) -> int:
        return part_size(self.next_part)

    def submit(self, data: bytes | bytearray) -> None:
        """Queue one part for upload (blocks for a free slot); raises UploadError once any part failed."""
        self.reserve()
        self.submit_reserved(data)

    def reserve(self) -> None:
        """Wait for a free upload slot; raises UploadError as soon as any earlier part has failed."""
        if self._error is not None:
            raise UploadError(f"upload of part failed: {self._error}") from self._error
        self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            raise UploadError(f"upload of part failed: {self._error}") from self._error

    def submit_reserved(self, data: bytes | bytearray) -> None:
        """Upload ``data`` as the next part in the slot taken by ``reserve``."""
        if self.next_part > S3_MAX_PARTS:
            self._slots.release()
            raise UploadError("the stream exceeds S3's 10,000 parts (maximum object size)")
        number = self.next_part
        self.next_part += 1
        self._futures.append(self._pool.submit(self._upload_part, number, data))

    def _started_upload_id(self) -> str:
        if self.upload_id is None:
            raise UploadError(f"the multipart upload of s3://{self.bucket}/{self.key} was never started")
        return self.upload_id

    def _upload_part(self, number: int, data: bytes | bytearray) -> CompletedPartTypeDef:
        try:
            checksum = _b64sha256(data)
            response = self._s3.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._started_upload_id(),
                PartNumber=number,
                # botocore sends a bytearray as it is; the stubs' BlobTypeDef omits bytearray, and
                # bytes(data) would copy the whole part
                Body=cast("bytes", data),
                ChecksumSHA256=checksum,
                ChecksumAlgorithm="SHA256",
            )
            with self._lock:
                self.bytes_sent += len(data)
            return {"PartNumber": number, "ETag": response["ETag"], "ChecksumSHA256": checksum}
        except BaseException as exc:
            with self._lock:
                if self._error is None:
                    self._error = exc
            raise
        finally:
            self._slots.release()

    def wait(self) -> list[CompletedPartTypeDef]:
        """Wait for every part; raise UploadError if any failed."""
        parts = []
        for future in self._futures:
            try:
                parts.append(future.result())
            except Exception as exc:
                raise UploadError(f"upload of part failed: {exc}") from exc
        return parts

    def complete(self) -> CompleteMultipartUploadOutputTypeDef:
        parts = self.wait()
        self.composite_sha256 = composite_checksum([part["ChecksumSHA256"] for part in parts])
        try:
            response = self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._started_upload_id(),
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",  # never replace a stored object (the bucket policy denies agents without it)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                raise UploadError(
                    f"s3://{self.bucket}/{self.key} already exists; a backup never replaces a stored object"
                ) from exc
            raise UploadError(f"cannot complete the multipart upload: {exc}") from exc
        except Exception as exc:
            raise UploadError(f"cannot complete the multipart upload: {exc}") from exc
        finally:
            self._pool.shutdown(wait=False)
        return response

    def abort(self) -> bool:
        """Abort the upload (after in-flight parts settle, so no part lands after the abort)."""
        self._error = self._error or UploadError("aborted")
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.upload_id is None:
            return True
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:
            log.exception(
                "could not abort multipart upload %s of %s; the lifecycle rule will remove it", self.upload_id, self.key
            )
            return False
        log.info("multipart upload aborted", extra={"ctx_key": self.key})
        return True


class PartSink:
    """Receives compressed bytes from zstd; hashes them and cuts them into growing parts.

    Memory is what this class bounds. A part's upload slot is reserved *before* the part starts
    filling, so at most ``parts_in_flight`` parts exist at once, the one being filled included.
    Each part is one bytearray allocated at its scheduled size plus room for one zstd output piece;
    zstd's output (~128 KiB pieces) is copied into it and the bytearray itself is handed to the
    uploader: no per-piece copies, no join, no reallocation, hence no transient second copy of a
    part. A part is at least its scheduled size and at most one piece larger (S3 requires only
    >= 5 MiB for all but the last). Peak: parts_in_flight x (part size + 256 KiB).
    """

    def __init__(self, upload: MultipartUpload) -> None:
        self._upload = upload
        self._part: bytearray | None = None
        self._fill = 0
        self.sha256 = hashlib.sha256()
        self.bytes_stored = 0

    def _open(self) -> bytearray:
        self._upload.reserve()
        self._part = bytearray(self._upload.current_part_size() + ZSTD_PIECE_ROOM)
        self._fill = 0
        return self._part

    def write(self, data: bytes) -> int:
        size = len(data)
        self.sha256.update(data)
        self.bytes_stored += size
        part = self._part if self._part is not None else self._open()
        end = self._fill + size
        if end > len(part):  # a piece larger than the room left: grow (zstd's pieces never are)
            part.extend(bytes(end - len(part)))
        part[self._fill : end] = data
        self._fill = end
        if end >= self._upload.current_part_size():
            self._cut()
        return size

    def _cut(self) -> None:
        part = self._part if self._part is not None else self._open()
        del part[self._fill :]
        self._part = None
        self._fill = 0
        self._upload.submit_reserved(part)

    def flush_last(self) -> None:
        if self._part is not None or self._upload.next_part == 1:
            self._cut()
