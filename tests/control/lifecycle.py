"""What S3 lifecycle would do to an object, from the bucket's rules as the synthesized template states them.

moto keeps lifecycle configurations but never runs them, so the tests that depend on what lifecycle
expires evaluate the template's ``LifecycleConfiguration.Rules`` here. It is an evaluator of *our* rule
set in CloudFormation's form (``Prefix``, ``TagFilters``, ``ObjectSize*``, ``ExpirationInDays`` …), not
of S3 in general: a rule property it does not model is refused, so a new kind of rule cannot slip past
the tests unevaluated. Semantics, as the S3 user guide states them:

- a rule applies to an object when it is ``Enabled``, the key starts with its ``Prefix`` and the object
  carries every one of its ``TagFilters`` (and its size is within ``ObjectSize*``);
- ``ExpirationInDays`` expires the current version at *creation + days, rounded up to the next midnight
  UTC* (``ExpirationDate``: at that date); with versioning this adds a delete marker — allowed under Object
  Lock, which only protects the version itself;
- ``NoncurrentVersionExpiration`` deletes a noncurrent version *NoncurrentDays* (rounded the same way) after
  it became noncurrent, but not while its Object Lock retention lasts;
- when several rules apply, the earliest expiry wins; ``AbortIncompleteMultipartUpload`` and
  ``ExpiredObjectDeleteMarker`` never touch a stored version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

KNOWN = {
    "Id",
    "Status",
    "Prefix",
    "TagFilters",
    "ObjectSizeGreaterThan",
    "ObjectSizeLessThan",
    "ExpirationInDays",
    "ExpirationDate",
    "NoncurrentVersionExpiration",
    "NoncurrentVersionExpirationInDays",
    "ExpiredObjectDeleteMarker",
    "AbortIncompleteMultipartUpload",
}


@dataclass(frozen=True)
class StoredVersion:
    """One version of an object as lifecycle sees it."""

    key: str
    created_at: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    size: int = 0
    noncurrent_since: datetime | None = None  # None: the current version
    locked_until: datetime | None = None


def next_midnight(moment: datetime) -> datetime:
    """S3 rounds every lifecycle due time up to the next midnight UTC."""
    moment = moment.astimezone(UTC)
    midnight = datetime.combine(moment.date(), time(0), tzinfo=UTC)
    return midnight if moment == midnight else midnight + timedelta(days=1)


@dataclass(frozen=True)
class Rule:
    raw: Mapping[str, Any]

    def __post_init__(self) -> None:
        unknown = set(self.raw) - KNOWN
        if unknown:
            raise ValueError(f"lifecycle rule {self.raw.get('Id')!r}: {sorted(unknown)} are not modelled here")
        noncurrent = self.raw.get("NoncurrentVersionExpiration") or {}
        if set(noncurrent) - {"NoncurrentDays"}:
            raise ValueError(f"lifecycle rule {self.raw.get('Id')!r}: {sorted(noncurrent)} are not modelled here")

    def applies_to(self, version: StoredVersion) -> bool:
        raw = self.raw
        if raw.get("Status") != "Enabled":
            return False
        if not version.key.startswith(raw.get("Prefix", "")):
            return False
        if any(version.tags.get(tag["Key"]) != tag["Value"] for tag in raw.get("TagFilters", [])):
            return False
        if "ObjectSizeGreaterThan" in raw and not version.size > int(raw["ObjectSizeGreaterThan"]):
            return False
        return not ("ObjectSizeLessThan" in raw and not version.size < int(raw["ObjectSizeLessThan"]))

    def due(self, version: StoredVersion) -> datetime | None:
        """When this rule removes the version (a delete marker, or the version itself), if it ever does."""
        if not self.applies_to(version):
            return None
        raw = self.raw
        if version.noncurrent_since is None:
            if "ExpirationInDays" in raw:
                return next_midnight(version.created_at + timedelta(days=int(raw["ExpirationInDays"])))
            if "ExpirationDate" in raw:
                return datetime.fromisoformat(str(raw["ExpirationDate"])).astimezone(UTC)
            return None
        days = (raw.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays")
        days = days if days is not None else raw.get("NoncurrentVersionExpirationInDays")
        if days is None:
            return None
        due = next_midnight(version.noncurrent_since + timedelta(days=int(days)))
        return max(due, version.locked_until) if version.locked_until else due


@dataclass(frozen=True)
class Lifecycle:
    rules: tuple[Rule, ...]

    @classmethod
    def of(cls, rules: Iterable[Mapping[str, Any]]) -> Lifecycle:
        return cls(tuple(Rule(rule) for rule in rules))

    @classmethod
    def of_bucket(cls, bucket: Mapping[str, Any]) -> Lifecycle:
        """The rules of an ``AWS::S3::Bucket`` resource of a synthesized template."""
        return cls.of(bucket["Properties"]["LifecycleConfiguration"]["Rules"])

    def due(self, version: StoredVersion) -> datetime | None:
        """When lifecycle removes the version: the earliest due time of the rules that apply; None: never."""
        times = [due for rule in self.rules if (due := rule.due(version)) is not None]
        return min(times) if times else None

    def removes(self, version: StoredVersion, now: datetime) -> bool:
        due = self.due(version)
        return due is not None and due <= now
