"""Part-size schedule and the bound on parts in flight (no AWS)."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from typing import Any

import pytest

from backup_agent.uploader import (
    BASE_PART_SIZE,
    S3_MAX_OBJECT,
    S3_MAX_PART,
    S3_MAX_PARTS,
    S3_MIN_PART,
    MultipartUpload,
    UploadError,
    part_size,
)

pytestmark = pytest.mark.unit


def test_ten_thousand_parts_cover_the_s3_maximum_object_size():
    assert sum(part_size(n) for n in range(1, S3_MAX_PARTS + 1)) >= S3_MAX_OBJECT


def test_no_part_exceeds_five_gib_and_none_is_below_five_mib():
    sizes = [part_size(n) for n in range(1, S3_MAX_PARTS + 1)]
    assert max(sizes) <= S3_MAX_PART
    assert min(sizes) >= S3_MIN_PART


def test_parts_grow_monotonically_and_start_small_for_flat_memory():
    sizes = [part_size(n) for n in range(1, S3_MAX_PARTS + 1)]
    assert sizes == sorted(sizes)
    assert sizes[0] == BASE_PART_SIZE == 6 * 1024 * 1024
    assert sum(sizes[:1000]) >= 5.8 * 1024**3  # every stream below ~5.9 GiB stored uses 6 MiB parts


def test_part_numbers_outside_s3_range_are_rejected():
    with pytest.raises(ValueError, match="outside"):
        part_size(S3_MAX_PARTS + 1)


class _SlowS3:
    def __init__(self, fail_part: int | None = None) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_part = fail_part
        self.aborted = False
        self._lock = threading.Lock()

    def create_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {"UploadId": "u1"}

    def upload_part(self, *, PartNumber: int, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(0.02)
        with self._lock:
            self.in_flight -= 1
        if PartNumber == self.fail_part:
            raise ConnectionError("gone")
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        return {"Parts": kwargs["MultipartUpload"]["Parts"]}

    def abort_multipart_upload(self, **_: Any) -> None:
        self.aborted = True


def _upload(s3: _SlowS3, parts_in_flight: int) -> MultipartUpload:
    upload = MultipartUpload(s3, bucket="b", key="k", kms_key_id="kid", metadata={}, parts_in_flight=parts_in_flight)
    upload.start()
    return upload


def test_no_more_than_parts_in_flight_parts_upload_at_once():
    s3 = _SlowS3()
    upload = _upload(s3, parts_in_flight=3)
    for _ in range(20):
        upload.submit(b"x" * 10)
    result = upload.complete()

    assert s3.max_in_flight == 3
    assert [p["PartNumber"] for p in result["Parts"]] == list(range(1, 21))
    assert all(p["ChecksumSHA256"] for p in result["Parts"])


def test_a_failed_part_stops_further_submissions_and_abort_cleans_up():
    s3 = _SlowS3(fail_part=2)
    upload = _upload(s3, parts_in_flight=1)

    def submit_many() -> None:
        for _ in range(50):
            upload.submit(b"x")

    with pytest.raises(UploadError):
        submit_many()
    assert upload.abort()
    assert s3.aborted


def test_parts_of_an_upload_that_was_never_started_fail_as_upload_errors():
    s3 = _SlowS3()
    upload = MultipartUpload(s3, bucket="b", key="k", kms_key_id="kid", metadata={})
    upload.submit(b"x" * 10)

    with pytest.raises(UploadError, match="never started"):
        upload.complete()
    assert s3.max_in_flight == 0  # no part reached S3


def test_composite_checksum_is_the_sha256_of_the_part_digests_with_the_part_count() -> None:

    from backup_agent.uploader import composite_checksum

    parts = [b"first part", b"second part", b"third"]
    part_checksums = [base64.b64encode(hashlib.sha256(p).digest()).decode() for p in parts]
    expected = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest())
    assert composite_checksum(part_checksums) == f"{expected.decode()}-3"
    assert composite_checksum(part_checksums[:2]) != composite_checksum(part_checksums)
