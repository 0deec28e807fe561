"""LOCAL STAND-IN for S3 replication: moto does not replicate, so the local pipeline and the tests copy
the primary bucket's backups into the vault the way the stack's replication rule does (stacks/, proven on
the synthesized template, not here).

What it copies, as the rule does: every current object version under ``agents/`` (backups and their
manifests) that the vault does not hold yet, to the same key, with the same user metadata (``run-id``,
``sha256``) and tags, encrypted SSE-KMS under the vault's key, with a SHA-256 checksum S3 computes from
the copied bytes (read and written again: moto's CopyObject cannot write into a locked bucket).

What it does not do: delete markers and deletions are never copied (the rule leaves them out too); and
moto cannot set the ``x-amz-replication-status`` headers (``COMPLETED`` on the source, ``REPLICA`` on the
copy) or keep the source's version id, so nothing in the pipeline relies on either: the off-site check
reads every copy back and compares it with its run.

``hold`` keeps chosen keys from being copied (a replication that stalls for some objects), so a test
can prove a missing copy pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from backup_contracts.fleet import Fleet
from backup_contracts.naming import AGENT_PREFIX_ROOT, vault_bucket_name, vault_key_alias


@dataclass
class LocalReplicator:
    source: Any  # S3 client of the primary region
    vault: Any  # S3 client of the vault's region
    bucket: str
    vault_bucket: str
    vault_key_arn: str
    hold: set[str] = field(default_factory=set)  # keys (or key prefixes) not to copy: a stalled replication

    def replicate(self) -> list[str]:
        """Copy what the vault lacks; returns the keys copied."""
        copied = []
        for version in self._source_versions():
            key = version["Key"]
            if any(key.startswith(held) for held in self.hold) or self._in_vault(key):
                continue
            self._copy(key, version["VersionId"])
            copied.append(key)
        return copied

    def _copy(self, key: str, version_id: str) -> None:
        # GET + PUT rather than CopyObject: moto refuses a copy into a bucket with a default retention
        # (it wants a checksum header CopyObject does not send); the local objects are small.
        source = self.source.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        tags = self.source.get_object_tagging(Bucket=self.bucket, Key=key, VersionId=version_id)["TagSet"]
        self.vault.put_object(
            Bucket=self.vault_bucket,
            Key=key,
            Body=source["Body"].read(),
            Metadata=source.get("Metadata", {}),
            Tagging="&".join(f"{quote(t['Key'])}={quote(t['Value'])}" for t in tags),
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self.vault_key_arn,
            ChecksumAlgorithm="SHA256",
        )

    def _source_versions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        paginator = self.source.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{AGENT_PREFIX_ROOT}/"):
            found.extend(v for v in page.get("Versions", []) if v.get("IsLatest"))  # delete markers: not listed
        return found

    def _in_vault(self, key: str) -> bool:
        response = self.vault.list_objects_v2(Bucket=self.vault_bucket, Prefix=key, MaxKeys=1)
        return any(item["Key"] == key for item in response.get("Contents", []))


def encrypt_by_default(s3: Any, bucket: str, key_arn: str) -> None:
    """SSE-KMS under ``key_arn`` with a bucket key, as both stacks configure their buckets."""
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )


@dataclass(frozen=True)
class LocalVault:
    bucket: str
    region: str
    key_arn: str


def create_vault(session: Any, fleet: Fleet) -> LocalVault | None:
    """The vault bucket and key as the vault stack creates them (in moto, in the vault's region): versioned,
    Object Lock with the vault's default retention, SSE-KMS under its own key. None without pipeline.offsite."""
    offsite = fleet.pipeline.offsite
    if offsite is None:
        return None
    kms, s3 = session.client("kms", region_name=offsite.region), session.client("s3", region_name=offsite.region)
    key_arn = str(kms.create_key(Description=f"{fleet.pipeline.name} vault")["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName=vault_key_alias(fleet.pipeline.name), TargetKeyId=key_arn)
    bucket = vault_bucket_name(fleet.pipeline.name, offsite.account)
    s3.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": offsite.region},
        ObjectLockEnabledForBucket=True,
    )
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": offsite.s3_mode, "Days": fleet.vault_retention_days()}},
        },
    )
    encrypt_by_default(s3, bucket, key_arn)
    return LocalVault(bucket=bucket, region=offsite.region, key_arn=key_arn)


def replicator(session: Any, bucket: str, vault: LocalVault) -> LocalReplicator:
    """The stand-in for the stack's replication rule from ``bucket`` (primary region) into ``vault``."""
    return LocalReplicator(
        source=session.client("s3"),
        vault=session.client("s3", region_name=vault.region),
        bucket=bucket,
        vault_bucket=vault.bucket,
        vault_key_arn=vault.key_arn,
    )
