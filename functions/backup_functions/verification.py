"""Whether a backup object in S3 is the one a run claims: one check for the audit and the restore coordinator.

``compare_head`` compares a HeadObject response (ChecksumMode=ENABLED) with what the run says about
its object — size, run id, and its SHA-256 by every independent source the response offers:

1. the ``sha256`` user metadata (objects written in one PUT can carry it);
2. S3's full-object ``ChecksumSHA256`` (single-part uploads with a SHA-256 checksum);
3. S3's composite ``ChecksumSHA256`` of a multipart upload, compared with the composite the agent
   reported in ``s3_checksum_sha256`` (S3 recomputed it from the bytes it received, part by part).

The audit (``verify_backup``) adds where the object lies (the pipeline's bucket, the agent's prefix)
and how it is encrypted (SSE-KMS under the pipeline's key), and hashes the object itself when no
checksum source exists and it is small enough. Any source that disagrees is a problem; no source at
all is a problem too ("nothing to compare"). Every problem is said in words.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backup_contracts.events import BackupSucceeded
from backup_contracts.naming import agent_prefix

SHA256_METADATA_KEY = "sha256"
RUN_ID_METADATA_KEY = "run-id"


@dataclass(frozen=True)
class ClaimedObject:
    """What a run says about its backup object."""

    run_id: str
    bytes_stored: int
    sha256: str
    s3_checksum_sha256: str | None = None

    @classmethod
    def of(cls, event: BackupSucceeded) -> ClaimedObject:
        return cls(event.run_id, event.bytes_stored, event.sha256, event.s3_checksum_sha256)


@dataclass(frozen=True)
class Verification:
    ok: bool
    problems: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict)
    checksum_compared: bool = True  # False: no checksum source found in the HEAD response

    def as_item(self) -> dict[str, Any]:
        """What the run record keeps (deterministic: no timestamps, so duplicates write the same)."""
        return {"ok": self.ok, "problems": list(self.problems), **self.facts}


def key_id(key: str) -> str:
    """KMS key id from an ARN ('arn:aws:kms:r:a:key/<id>') or a bare id."""
    return key.rsplit("/", 1)[-1] if key.startswith("arn:") else key


def same_kms_key(actual: str | None, expected: str) -> bool:
    if not actual:
        return False
    if actual.startswith("arn:") and expected.startswith("arn:"):
        return actual == expected
    return key_id(actual) == key_id(expected)


def is_multipart(head: Mapping[str, Any]) -> bool:
    etag = str(head.get("ETag", "")).strip('"')
    return "-" in etag or "-" in str(head.get("ChecksumSHA256", "")) or head.get("ChecksumType") == "COMPOSITE"


def _b64_to_hex(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def full_object_sha256(head: Mapping[str, Any]) -> str | None:
    """Hex SHA-256 from S3's ChecksumSHA256 when it covers the whole object (not a composite)."""
    value = head.get("ChecksumSHA256")
    if not value:
        return None
    checksum_type = head.get("ChecksumType")
    if checksum_type == "FULL_OBJECT" or (checksum_type is None and not is_multipart(head)):
        return _b64_to_hex(str(value))
    return None


def composite_base(value: str) -> str:
    """'abc=-12' → 'abc=' (S3 returns the part count suffix on HeadObject; some emulators do not)."""
    return value.split("-", 1)[0]


def compare_head(head: Mapping[str, Any], claimed: ClaimedObject) -> tuple[list[str], list[str]]:
    """(problems, checksum sources compared) of a HeadObject response against what the run claims."""
    problems: list[str] = []
    sources: list[str] = []
    size = head.get("ContentLength")
    if size != claimed.bytes_stored:
        problems.append(f"size is {size} bytes, the run recorded {claimed.bytes_stored}")
    metadata = {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}
    run_id = metadata.get(RUN_ID_METADATA_KEY)
    if run_id is not None and run_id != claimed.run_id:
        problems.append(f"the object belongs to run {run_id}, not {claimed.run_id}")
    meta_sha = metadata.get(SHA256_METADATA_KEY)
    if meta_sha is not None:
        sources.append("metadata")
        if meta_sha.lower() != claimed.sha256:
            problems.append(f"sha256 in object metadata is {meta_sha}, the run recorded {claimed.sha256}")
    s3_sha = full_object_sha256(head)
    if s3_sha is not None:
        sources.append("s3-full-object-checksum")
        if s3_sha != claimed.sha256:
            problems.append(f"S3's full-object SHA-256 is {s3_sha}, the run recorded {claimed.sha256}")
    s3_value = head.get("ChecksumSHA256")
    if s3_sha is None and s3_value and claimed.s3_checksum_sha256:
        sources.append("s3-composite-checksum")
        if composite_base(str(s3_value)) != composite_base(claimed.s3_checksum_sha256):
            problems.append(
                f"S3's checksum of the parts is {s3_value}, the agent uploaded parts with {claimed.s3_checksum_sha256}"
            )
    return problems, sources


def missing(reason: str) -> Verification:
    return Verification(False, (reason,), {"object_found": False})


def verify_backup(
    head: Mapping[str, Any],
    event: BackupSucceeded,
    *,
    bucket: str,
    kms_key_arn: str,
    max_skew: timedelta = timedelta(minutes=5),
) -> Verification:
    """The audit's check of a HeadObject response against a Backup Succeeded event: besides
    ``compare_head``, the object lies in the pipeline's bucket under the agent's prefix, carries this
    run's id, was written during the run, and is SSE-KMS encrypted under the pipeline's key."""
    problems: list[str] = []
    if event.bucket != bucket:
        problems.append(f"object is in bucket {event.bucket!r}, not the pipeline's bucket {bucket!r}")
    if not event.key.startswith(agent_prefix(event.agent)):
        problems.append(f"object key {event.key!r} is outside the agent's prefix {agent_prefix(event.agent)!r}")
    object_problems, sources = compare_head(head, ClaimedObject.of(event))
    problems += object_problems
    metadata = {str(k).lower() for k in (head.get("Metadata") or {})}
    if RUN_ID_METADATA_KEY not in metadata:
        problems.append("the object carries no run-id metadata: it cannot be told apart from another run's")
    written = head.get("LastModified")
    if isinstance(written, datetime) and not (event.started_at - max_skew <= written <= event.finished_at + max_skew):
        problems.append(
            f"the object was written at {written.isoformat()}, outside the run ({event.started_at.isoformat()}"
            f" to {event.finished_at.isoformat()}): an older object replayed as this run"
        )
    sse = head.get("ServerSideEncryption")
    actual_key = head.get("SSEKMSKeyId")
    if sse != "aws:kms":
        problems.append(f"object is not SSE-KMS encrypted (ServerSideEncryption={sse})")
    elif not same_kms_key(actual_key, kms_key_arn):
        problems.append(f"object is encrypted with KMS key {actual_key}, not the pipeline's key")
    facts = {
        "object_found": True,
        "content_length": head.get("ContentLength"),
        "checksum_sources": sources,
        "sse": sse,
        "kms_key_id": key_id(actual_key) if actual_key else None,
    }
    return Verification(
        not problems and bool(sources),
        tuple(problems),
        {k: v for k, v in facts.items() if v is not None},
        checksum_compared=bool(sources),
    )


def with_problems(verification: Verification, problems: list[str]) -> Verification:
    """The verification with more problems found elsewhere (a failed check of the run itself)."""
    if not problems:
        return verification
    return Verification(False, (*verification.problems, *problems), verification.facts, verification.checksum_compared)


def with_manifest(
    verification: Verification, event: BackupSucceeded, manifest: Mapping[str, Any] | None
) -> Verification:
    """For a multipart object (compared by S3's composite checksum of its parts), its sidecar manifest
    must also name this run, its size and its full SHA-256."""
    problems = list(verification.problems)
    if manifest is None:
        problems.append("the multipart object has no readable manifest to confirm its full SHA-256")
    else:
        for name, expected in (
            ("run_id", event.run_id),
            ("sha256", event.sha256),
            ("bytes_stored", event.bytes_stored),
        ):
            if manifest.get(name) != expected:
                problems.append(f"the manifest's {name} is {manifest.get(name)!r}, the run reported {expected!r}")
    facts = dict(verification.facts)
    facts["checksum_sources"] = [*facts.get("checksum_sources", []), "manifest"]
    return Verification(verification.ok and not problems[len(verification.problems) :], tuple(problems), facts)


def with_content_hash(verification: Verification, sha256: str, chunks: Iterable[bytes]) -> Verification:
    """Add the last source: the object's bytes (read by the caller), hashed and compared with ``sha256``."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    problems = list(verification.problems)
    if digest.hexdigest() != sha256:
        problems.append(f"SHA-256 of the object's content is {digest.hexdigest()}, the run reported {sha256}")
    facts = dict(verification.facts)
    facts["checksum_sources"] = [*facts.get("checksum_sources", []), "content-read"]
    return Verification(not problems, tuple(problems), facts, checksum_compared=True)


def nothing_to_compare(verification: Verification, read_limit: int) -> Verification:
    problems = [
        *verification.problems,
        "no checksum to compare the object with: no sha256 metadata, no full-object S3 checksum, no"
        f" s3_checksum_sha256 in the event, and the object is larger than the audit's read limit ({read_limit} bytes)."
        " Fix: have the agent report s3_checksum_sha256",
    ]
    return Verification(False, tuple(problems), verification.facts, checksum_compared=False)
