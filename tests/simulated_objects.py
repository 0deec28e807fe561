"""Objects of simulated runs in in-process moto: moto stamps an object with the real time it was written,
while the tests' runs happen on a simulated clock; ``date_object`` dates it when the run wrote it."""

from __future__ import annotations

from datetime import UTC, datetime

MOTO_ACCOUNT = "123456789012"  # moto's default account


def date_object(bucket: str, key: str, moment: datetime) -> None:
    """Make S3 report ``moment`` as the object's LastModified (its latest version)."""
    from moto.s3.models import s3_backends

    stored = s3_backends[MOTO_ACCOUNT]["aws"].buckets[bucket].keys[key]
    stored.last_modified = moment.astimezone(UTC).replace(tzinfo=None)
