"""The lifecycle evaluator the keep-set tests rely on: S3's matching and rounding, and a refusal of what it
does not model (so a new kind of rule cannot pass the tests unevaluated)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from .lifecycle import Lifecycle, StoredVersion, next_midnight

pytestmark = pytest.mark.unit

CREATED = datetime(2014, 1, 15, 10, 30, tzinfo=UTC)
DAILY = {"Id": "daily", "Status": "Enabled", "TagFilters": [{"Key": "retention", "Value": "std-daily"}]}


def _version(**tags: str) -> StoredVersion:
    return StoredVersion("agents/db-1/x.zst", CREATED, tags)


def test_expiry_is_creation_plus_days_rounded_up_to_the_next_midnight_utc():
    # the S3 user guide's own example: created 1/15/2014 10:30 UTC, 3 days → 1/19/2014 00:00 UTC
    lifecycle = Lifecycle.of([{**DAILY, "ExpirationInDays": 3}])
    assert lifecycle.due(_version(retention="std-daily")) == datetime(2014, 1, 19, tzinfo=UTC)
    assert next_midnight(datetime(2014, 1, 19, tzinfo=UTC)) == datetime(2014, 1, 19, tzinfo=UTC)


def test_a_rule_applies_only_to_objects_with_every_one_of_its_tags():
    lifecycle = Lifecycle.of([{**DAILY, "ExpirationInDays": 3}])
    assert lifecycle.due(_version(retention="keep")) is None
    assert lifecycle.due(_version()) is None
    assert lifecycle.due(_version(retention="std-daily", owner="ops")) is not None


def test_prefix_size_and_status_narrow_a_rule():
    base = {"Id": "r", "Status": "Enabled", "ExpirationInDays": 1}
    assert Lifecycle.of([{**base, "Prefix": "logs/"}]).due(_version()) is None
    assert Lifecycle.of([{**base, "ObjectSizeGreaterThan": 10}]).due(_version()) is None
    assert Lifecycle.of([{**base, "Status": "Disabled"}]).due(_version()) is None
    assert Lifecycle.of([base]).due(_version()) == next_midnight(CREATED + timedelta(days=1))


def test_the_earliest_expiry_of_the_rules_that_apply_wins():
    lifecycle = Lifecycle.of(
        [{**DAILY, "ExpirationInDays": 30}, {"Id": "all", "Status": "Enabled", "ExpirationInDays": 5}]
    )
    assert lifecycle.due(_version(retention="std-daily")) == next_midnight(CREATED + timedelta(days=5))


def test_a_noncurrent_version_is_deleted_after_its_days_but_not_while_it_is_locked():
    lifecycle = Lifecycle.of([{**DAILY, "NoncurrentVersionExpiration": {"NoncurrentDays": 7}}])
    since = CREATED + timedelta(days=2)
    version = StoredVersion("k", CREATED, {"retention": "std-daily"}, noncurrent_since=since)
    assert lifecycle.due(version) == next_midnight(since + timedelta(days=7))
    locked = StoredVersion(
        "k", CREATED, {"retention": "std-daily"}, noncurrent_since=since, locked_until=since + timedelta(days=60)
    )
    assert lifecycle.due(locked) == since + timedelta(days=60)
    assert lifecycle.due(StoredVersion("k", CREATED, {"retention": "std-daily"})) is None  # current: no expiration


def test_abort_and_delete_marker_rules_never_remove_a_stored_version():
    lifecycle = Lifecycle.of(
        [
            {
                "Id": "abort",
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                "ExpiredObjectDeleteMarker": True,
            }
        ]
    )
    assert lifecycle.due(_version()) is None


@pytest.mark.parametrize(
    "rule",
    [
        {"Id": "t", "Status": "Enabled", "Filter": {"Prefix": ""}, "ExpirationInDays": 1},
        {
            "Id": "n",
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 3},
        },
    ],
)
def test_what_the_evaluator_does_not_model_is_refused(rule):
    with pytest.raises(ValueError, match="not modelled"):
        Lifecycle.of([rule])
