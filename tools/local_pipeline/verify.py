"""Independent checks of what the pipeline stored: the object, its encryption, its checksum and its
contents — used by the demo and by the end-to-end tests, never by the pipeline itself."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard


class VerificationError(AssertionError):
    pass


@dataclass(frozen=True)
class StoredBackup:
    key: str
    size: int
    sha256: str
    sse: str
    kms_key_id: str
    metadata: dict[str, str]


def fetch_backup(s3: Any, bucket: str, key: str, into: Path) -> StoredBackup:
    """Download one backup object to ``into`` and describe how it is stored."""
    head = s3.head_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    with into.open("wb") as out:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
    return StoredBackup(
        key=key,
        size=int(head["ContentLength"]),
        sha256=digest.hexdigest(),
        sse=str(head.get("ServerSideEncryption", "")),
        kms_key_id=str(head.get("SSEKMSKeyId", "")),
        metadata=dict(head.get("Metadata", {})),
    )


def decompress(source: Path, destination: Path) -> None:
    with source.open("rb") as raw, destination.open("wb") as out:
        zstandard.ZstdDecompressor().copy_stream(raw, out)


def sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted — what 'equal databases' means here."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if connection.execute("PRAGMA integrity_check").fetchone() != ("ok",):
            raise VerificationError(f"{path} fails PRAGMA integrity_check")
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: sorted(connection.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)  # noqa: S608
            for table in sorted(tables)
        }
    finally:
        connection.close()
