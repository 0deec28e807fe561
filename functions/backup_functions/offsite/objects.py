"""One ``ObjectStore`` over the primary bucket and the off-site vault: each call goes to the store of the
bucket it names, so a restore source that lies in the vault is checked, read and presigned there (with a
client in the vault's region) by the same code that handles the primary bucket."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import boto3
from botocore.config import Config

from backup_contracts.fleet import Fleet
from backup_functions.offsite.check import VaultConfig
from backup_functions.ports import ObjectStore, Retention, S3ObjectStore


def vault_store(fleet: Fleet) -> ObjectStore | None:
    """The vault, read with the calling function's role in the vault's region (SigV4: SSE-KMS objects);
    None without pipeline.offsite."""
    vault = VaultConfig.from_fleet(fleet)
    if vault is None:
        return None
    return S3ObjectStore(boto3.client("s3", region_name=vault.region, config=Config(signature_version="s3v4")))


def with_vault(primary: ObjectStore, fleet: Fleet, vault: ObjectStore | None = None) -> ObjectStore:
    """``primary``, and the vault's bucket through ``vault`` (default: ``vault_store``) when there is one."""
    config = VaultConfig.from_fleet(fleet)
    store = vault or vault_store(fleet)
    if config is None or store is None:
        return primary
    return BucketRoutedObjects(primary, {config.bucket: store})


class BucketRoutedObjects:
    def __init__(self, primary: ObjectStore, others: Mapping[str, ObjectStore]) -> None:
        self._primary = primary
        self._others = dict(others)

    def _of(self, bucket: str) -> ObjectStore:
        return self._others.get(bucket, self._primary)

    def head(self, bucket: str, key: str, version_id: str | None) -> dict[str, Any] | None:
        return self._of(bucket).head(bucket, key, version_id)

    def read(self, bucket: str, key: str, version_id: str | None) -> Iterator[bytes]:
        return self._of(bucket).read(bucket, key, version_id)

    def set_tag(self, bucket: str, key: str, version_id: str | None, name: str, value: str) -> bool:
        return self._of(bucket).set_tag(bucket, key, version_id, name, value)

    def retention(self, bucket: str, key: str, version_id: str | None) -> tuple[bool, Retention | None]:
        return self._of(bucket).retention(bucket, key, version_id)

    def set_retention(self, bucket: str, key: str, version_id: str | None, retention: Retention) -> bool:
        return self._of(bucket).set_retention(bucket, key, version_id, retention)

    def manifest(self, bucket: str, key: str) -> dict[str, Any] | None:
        return self._of(bucket).manifest(bucket, key)

    def presign_get(self, bucket: str, key: str, version_id: str | None, expires_s: int) -> str:
        return self._of(bucket).presign_get(bucket, key, version_id, expires_s)
