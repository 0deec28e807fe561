"""Object verification, plain Python over HeadObject-shaped dicts."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from backup_contracts.events import BackupSucceeded
from backup_functions.verification import full_object_sha256, same_kms_key, verify_backup, with_content_hash

pytestmark = pytest.mark.unit

KEY = "arn:aws:kms:us-east-1:123456789012:key/1111-2222"
BODY = b"dump bytes"
SHA = hashlib.sha256(BODY).hexdigest()


def event(**changes: Any) -> BackupSucceeded:
    fields = {
        "job_id": "j1",
        "run_id": "r1",
        "target": "orders",
        "agent": "db-1",
        "started_at": datetime(2026, 11, 16, 2, tzinfo=UTC),
        "bucket": "bkt",
        "key": "agents/db-1/orders/2026/11/16/r1.pgdump.zst",
        "finished_at": datetime(2026, 11, 16, 2, 3, tzinfo=UTC),
        "bytes_in": 100,
        "bytes_stored": len(BODY),
        "sha256": SHA,
        "engine": "postgresql",
        "format": "pg_dump-custom",
        "compression": "zstd",
        "duration_s": 3.0,
    }
    return BackupSucceeded(**{**fields, **changes})


def head(**changes: Any) -> dict[str, Any]:
    return {
        "ContentLength": len(BODY),
        "ETag": '"abc"',
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": KEY,
        "Metadata": {"sha256": SHA, "run-id": "r1"},
        "LastModified": datetime(2026, 11, 16, 2, 2, tzinfo=UTC),
        **changes,
    }


def check(h: dict[str, Any], e: BackupSucceeded | None = None):
    return verify_backup(h, e or event(), bucket="bkt", kms_key_arn=KEY)


def test_matching_object_is_ok():
    result = check(head())
    assert result.ok
    assert result.problems == ()


def test_size_mismatch_is_a_problem():
    assert not check(head(ContentLength=len(BODY) - 1)).ok


def test_metadata_sha_mismatch_is_a_problem():
    assert "sha256 in object metadata" in check(head(Metadata={"sha256": "0" * 64})).problems[0]


def test_full_object_s3_checksum_counts_as_a_source():
    b64 = base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    result = check(head(Metadata={"run-id": "r1"}, ChecksumSHA256=b64))
    assert result.ok
    assert result.facts["checksum_sources"] == ["s3-full-object-checksum"]


def test_multipart_checksum_is_not_mistaken_for_a_full_object_one():
    b64 = base64.b64encode(hashlib.sha256(b"parts").digest()).decode()
    assert full_object_sha256({"ChecksumSHA256": b64, "ETag": '"abc-2"'}) is None
    assert full_object_sha256({"ChecksumSHA256": b64 + "-2"}) is None
    assert full_object_sha256({"ChecksumSHA256": b64, "ChecksumType": "COMPOSITE"}) is None


def test_no_checksum_source_is_not_ok_and_asks_for_a_read():
    result = check(head(Metadata={}))
    assert not result.ok
    assert result.checksum_compared is False


def test_content_hash_completes_a_verification_without_checksum():
    result = with_content_hash(check(head(Metadata={"run-id": "r1"})), event().sha256, [BODY[:4], BODY[4:]])
    assert result.ok
    assert result.facts["checksum_sources"] == ["content-read"]


def test_unencrypted_object_is_a_problem():
    result = check(head(ServerSideEncryption="AES256", SSEKMSKeyId=None))
    assert any("not SSE-KMS" in p for p in result.problems)


def test_other_kms_key_is_a_problem():
    result = check(head(SSEKMSKeyId="arn:aws:kms:us-east-1:123456789012:key/9999"))
    assert any("not the pipeline's key" in p for p in result.problems)


def test_key_id_and_arn_of_the_same_key_match():
    assert same_kms_key("1111-2222", KEY)
    assert not same_kms_key("arn:aws:kms:eu-west-1:123456789012:key/1111-2222", KEY)


def test_object_in_another_bucket_or_outside_the_agent_prefix_is_a_problem():
    result = check(head(), event(bucket="elsewhere", key="agents/db-2/x"))
    assert len([p for p in result.problems if "bucket" in p or "prefix" in p]) == 2


def test_an_object_of_another_run_is_a_problem() -> None:
    result = check(head(Metadata={"sha256": hashlib.sha256(BODY).hexdigest(), "run-id": "someone-else"}))
    assert not result.ok
    assert any("belongs to run someone-else" in p for p in result.problems)


def test_an_object_without_run_id_metadata_is_not_this_runs() -> None:
    result = check(head(Metadata={"sha256": SHA}))
    assert not result.ok
    assert any("no run-id metadata" in p for p in result.problems)


@pytest.mark.parametrize("written", [datetime(2026, 11, 9, 2, 1, tzinfo=UTC), datetime(2026, 11, 16, 3, tzinfo=UTC)])
def test_an_object_written_outside_its_run_is_a_replay(written: datetime) -> None:
    result = check(head(LastModified=written))
    assert not result.ok
    assert any("outside the run" in p for p in result.problems)
