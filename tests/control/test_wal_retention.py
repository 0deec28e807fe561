"""Archived WAL is kept as long as the retained daily base backups need it, and no longer: proved on the
lifecycle rules of the synthesized template (tests/control/lifecycle.py evaluates them; moto never runs
lifecycle), with the tag the audit really puts on a verified WAL object."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from backup_contracts.fleet import Fleet
from backup_contracts.naming import RETENTION_TAG
from stacks.app_factory import cdk_json_context
from stacks.storage import Storage

from .conftest import START, daily_targets, make_fleet
from .lifecycle import Lifecycle, StoredVersion, next_midnight
from .test_audit import deliver
from .wal_world import pitr_fleet, put_wal_object, seg, wal_archived, wal_event

DAILY_DAYS = 14  # the standard class of tests/control/conftest.py


def lifecycle_of(fleet: Fleet) -> Lifecycle:
    stack = Stack(App(context=cdk_json_context()), "Bare")
    storage = Storage(stack, "Storage", fleet=fleet)
    resources = Template.from_stack(stack).to_json()["Resources"]
    return Lifecycle.of_bucket(resources[stack.get_logical_id(storage.bucket.node.default_child)])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lifecycle() -> Lifecycle:
    return lifecycle_of(pitr_fleet())


@pytest.mark.infrastructure
def test_wal_expires_a_day_after_the_oldest_daily_base_backup_it_serves(lifecycle: Lifecycle) -> None:
    base_backup = StoredVersion("agents/db-1/orders-pitr/2026/11/16/r1.tar.zst", START, {"retention": "standard-daily"})
    first_wal = StoredVersion(f"agents/db-1/orders-pitr/wal/{seg(1)}.zst", START, {"retention": "standard-wal"})

    backup_gone = lifecycle.due(base_backup)
    wal_gone = lifecycle.due(first_wal)

    assert backup_gone == next_midnight(START + timedelta(days=DAILY_DAYS))
    assert wal_gone == next_midnight(START + timedelta(days=DAILY_DAYS + 1))
    # every WAL file archived after a daily base backup outlives it: restores to any time after it work
    # for as long as the base backup exists; older WAL (before the oldest daily) is gone a day later
    later = StoredVersion(first_wal.key, START + timedelta(hours=5), first_wal.tags)
    assert lifecycle.due(later) > backup_gone


@pytest.mark.infrastructure
def test_untagged_wal_is_never_expired_by_age(lifecycle: Lifecycle) -> None:
    # an object the audit never verified keeps no tag: nothing expires it (and nothing restores from it)
    assert lifecycle.due(StoredVersion(f"agents/db-1/orders-pitr/wal/{seg(1)}.zst", START, {})) is None


@pytest.mark.infrastructure
def test_a_fleet_without_pitr_targets_gets_no_wal_rule() -> None:
    fleet = make_fleet({"db-1": daily_targets("orders", 1)})
    stack = Stack(App(context=cdk_json_context()), "Bare")
    Storage(stack, "Storage", fleet=fleet)
    buckets = Template.from_stack(stack).find_resources("AWS::S3::Bucket")
    rule_ids = [
        rule["Id"]
        for bucket in buckets.values()
        for rule in bucket["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    ]
    assert rule_ids
    assert not [rule for rule in rule_ids if rule.endswith("-wal")]


@pytest.fixture
def fleet() -> Fleet:
    return pitr_fleet()


@pytest.mark.integration
def test_the_audits_tag_on_a_verified_wal_object_is_the_one_the_rule_expires(aws, auditor, lambda_context, lifecycle):
    key = put_wal_object(aws, seg(1))
    deliver(lambda_context, wal_event(wal_archived(aws, seg(1))))
    tagging = aws.session.client("s3").get_object_tagging(Bucket=aws.bucket, Key=key)["TagSet"]
    tags = {t["Key"]: t["Value"] for t in tagging}

    due = lifecycle.due(StoredVersion(key, START, tags))

    assert tags[RETENTION_TAG] == "standard-wal"
    assert due == next_midnight(START + timedelta(days=DAILY_DAYS + 1))
