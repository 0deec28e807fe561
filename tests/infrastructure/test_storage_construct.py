"""Storage alone: KMS key and backup bucket security properties, lifecycle per retention tier, Object Lock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import Stack
from aws_cdk.assertions import Match, Template

from backup_contracts.fleet import Fleet, parse_fleet
from backup_contracts.naming import (
    AGENT_PREFIX_ROOT,
    KEEP_TAG_VALUE,
    RESTORE_OBJECTS_DAYS,
    RESTORE_PREFIX_ROOT,
    RETENTION_TAG,
    retention_tag_value,
)
from stacks.storage import Storage

pytestmark = pytest.mark.infrastructure

FLEET_FILE = Path(__file__).resolve().parents[2] / "fleet.yaml"


def _storage(stack: Stack, fleet: Fleet) -> tuple[Storage, Template]:
    storage = Storage(stack, "Storage", fleet=fleet)
    return storage, Template.from_stack(stack)


def _backup_bucket(stack: Stack, storage: Storage, template: Template) -> dict[str, Any]:
    return template.to_json()["Resources"][stack.get_logical_id(storage.bucket.node.default_child)]  # type: ignore[arg-type]


def _bucket_policy_statements(template: Template) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::S3::BucketPolicy")
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_key_rotation_is_on_and_key_is_retained(bare_stack: Stack, fleet: Fleet) -> None:
    _, template = _storage(bare_stack, fleet)
    template.has_resource("AWS::KMS::Key", {"Properties": {"EnableKeyRotation": True}, "DeletionPolicy": "Retain"})


def test_bucket_uses_sse_kms_with_the_pipeline_key_and_bucket_key(bare_stack: Stack, fleet: Fleet) -> None:
    storage, template = _storage(bare_stack, fleet)
    key_id = bare_stack.get_logical_id(storage.key.node.default_child)  # type: ignore[arg-type]
    encryption = _backup_bucket(bare_stack, storage, template)["Properties"]["BucketEncryption"]
    assert encryption == {
        "ServerSideEncryptionConfiguration": [
            {
                "BucketKeyEnabled": True,
                "ServerSideEncryptionByDefault": {
                    "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
                    "SSEAlgorithm": "aws:kms",
                },
            }
        ]
    }


def test_bucket_is_versioned_private_and_retained(bare_stack: Stack, fleet: Fleet) -> None:
    storage, template = _storage(bare_stack, fleet)
    bucket = _backup_bucket(bare_stack, storage, template)
    assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["DeletionPolicy"] == "Retain"


def test_every_bucket_denies_requests_without_tls(bare_stack: Stack, fleet: Fleet) -> None:
    _, template = _storage(bare_stack, fleet)
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2  # backup bucket and access-log bucket
    for policy in policies.values():
        assert any(
            s["Effect"] == "Deny"
            and s["Action"] == "s3:*"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and s["Principal"] == {"AWS": "*"}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )


def test_put_with_another_encryption_is_denied_only_when_it_names_one(bare_stack: Stack, fleet: Fleet) -> None:
    # UploadPart and CompleteMultipartUpload carry no SSE header: the Deny must require the header (Null: false)
    _, template = _storage(bare_stack, fleet)
    statement = next(s for s in _bucket_policy_statements(template) if s.get("Sid") == "DenyPutWithoutKmsEncryption")
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "s3:PutObject"
    assert statement["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
        "Null": {"s3:x-amz-server-side-encryption": "false"},
    }


def test_put_with_another_kms_key_is_denied(bare_stack: Stack, fleet: Fleet) -> None:
    storage, template = _storage(bare_stack, fleet)
    key_id = bare_stack.get_logical_id(storage.key.node.default_child)  # type: ignore[arg-type]
    statements = {s.get("Sid"): s for s in _bucket_policy_statements(template)}
    other_key = statements["DenyPutWithAnotherKmsKey"]
    assert other_key["Effect"] == "Deny"
    assert other_key["Action"] == "s3:PutObject"
    assert other_key["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": {"Fn::GetAtt": [key_id, "Arn"]}},
        "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
    }
    # aws:kms without a key id would silently use the AWS-managed aws/s3 key: denied too.
    assert statements["DenyPutWithKmsButNoKeyId"]["Effect"] == "Deny"
    assert statements["DenyPutWithKmsButNoKeyId"]["Condition"] == {
        "StringEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
        "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "true"},
    }


def test_one_lifecycle_rule_per_retention_class_tier(bare_stack: Stack, fleet: Fleet) -> None:
    storage, template = _storage(bare_stack, fleet)
    rules = _backup_bucket(bare_stack, storage, template)["Properties"]["LifecycleConfiguration"]["Rules"]
    tagged = {rule["TagFilters"][0]["Value"]: rule for rule in rules if "TagFilters" in rule}
    expected = {
        retention_tag_value(name, tier): days
        for name, retention_class in fleet.retention_classes.items()
        for tier, days in retention_class.tiers().items()
    }
    assert {value: rule["ExpirationInDays"] for value, rule in tagged.items()} == expected
    for value, rule in tagged.items():
        assert rule["TagFilters"] == [{"Key": RETENTION_TAG, "Value": value}]
        assert rule["Status"] == "Enabled"
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7}


def test_lifecycle_follows_the_fleet_retention_classes(bare_stack: Stack, fleet_with: Callable[..., Fleet]) -> None:
    fleet = fleet_with(retention_classes={"standard": {"daily_days": 3}, "short": {"daily_days": 1, "weekly_days": 9}})
    storage, template = _storage(bare_stack, fleet)
    rules = _backup_bucket(bare_stack, storage, template)["Properties"]["LifecycleConfiguration"]["Rules"]
    tagged = {rule["TagFilters"][0]["Value"]: rule["ExpirationInDays"] for rule in rules if "TagFilters" in rule}
    assert tagged == {"standard-daily": 3, "short-daily": 1, "short-weekly": 9}


def test_incomplete_multipart_uploads_are_aborted_after_one_day(bare_stack: Stack, fleet: Fleet) -> None:
    storage, template = _storage(bare_stack, fleet)
    rules = _backup_bucket(bare_stack, storage, template)["Properties"]["LifecycleConfiguration"]["Rules"]
    abort = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert len(abort) == 1
    assert abort[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "TagFilters" not in abort[0]
    assert "Prefix" not in abort[0]


def test_server_access_logs_go_to_a_separate_bucket(bare_stack: Stack, fleet: Fleet) -> None:
    storage, template = _storage(bare_stack, fleet)
    logs_id = bare_stack.get_logical_id(storage.access_logs.node.default_child)  # type: ignore[arg-type]
    logging = _backup_bucket(bare_stack, storage, template)["Properties"]["LoggingConfiguration"]
    assert logging["DestinationBucketName"] == {"Ref": logs_id}
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
        },
    )


def test_object_lock_is_on_by_default_with_no_default_retention(bare_stack: Stack, fleet: Fleet) -> None:
    assert fleet.pipeline.object_lock.enabled
    storage, template = _storage(bare_stack, fleet)
    properties = _backup_bucket(bare_stack, storage, template)["Properties"]
    assert properties["ObjectLockEnabled"] is True
    # enabled without a Rule: the audit sets each verified backup's retention from its GFS tier
    assert properties["ObjectLockConfiguration"] == {"ObjectLockEnabled": "Enabled"}
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}


def test_a_fleet_that_says_nothing_about_object_lock_gets_it(bare_stack: Stack) -> None:
    raw = yaml.safe_load(FLEET_FILE.read_text())
    raw["pipeline"].pop("object_lock")
    storage, template = _storage(bare_stack, parse_fleet(raw, "fleet.yaml"))
    properties = _backup_bucket(bare_stack, storage, template)["Properties"]
    assert properties["ObjectLockEnabled"] is True
    assert properties["ObjectLockConfiguration"] == {"ObjectLockEnabled": "Enabled"}


@pytest.mark.parametrize("mode", ["governance", "compliance", "COMPLIANCE"])
def test_the_lock_mode_is_the_audits_not_a_bucket_default(
    bare_stack: Stack, fleet_with: Callable[..., Fleet], mode: str
) -> None:
    fleet = fleet_with(pipeline={"object_lock": {"enabled": True, "mode": mode}})
    storage, template = _storage(bare_stack, fleet)
    properties = _backup_bucket(bare_stack, storage, template)["Properties"]
    assert properties["ObjectLockConfiguration"] == {"ObjectLockEnabled": "Enabled"}
    assert fleet.pipeline.object_lock.s3_mode == mode.upper()


def test_object_lock_can_be_turned_off_for_a_new_bucket(bare_stack: Stack, fleet_with: Callable[..., Fleet]) -> None:
    fleet = fleet_with(pipeline={"object_lock": {"enabled": False}})
    storage, template = _storage(bare_stack, fleet)
    properties = _backup_bucket(bare_stack, storage, template)["Properties"]
    assert "ObjectLockEnabled" not in properties
    assert "ObjectLockConfiguration" not in properties


def test_no_lifecycle_rule_expires_kept_or_untagged_backups(bare_stack: Stack, fleet: Fleet) -> None:
    storage, template = _storage(bare_stack, fleet)
    rules = _backup_bucket(bare_stack, storage, template)["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if {"ExpirationInDays", "ExpirationDate", "NoncurrentVersionExpiration"} & set(r)]
    # the one expiry by prefix: the restore coordinator's own objects, where no backup lives (agents/ only)
    by_prefix = [r for r in expiring if r.get("Prefix") == f"{RESTORE_PREFIX_ROOT}/"]
    assert [r["Id"] for r in by_prefix] == ["expire-restore-objects"]
    expiring = [r for r in expiring if r not in by_prefix]
    assert expiring
    for rule in expiring:
        # every expiry is scoped by exactly one retention tier tag, never the keep value, never a prefix
        assert rule["TagFilters"] == [{"Key": RETENTION_TAG, "Value": rule["TagFilters"][0]["Value"]}]
        assert rule["TagFilters"][0]["Value"] != KEEP_TAG_VALUE
        assert "Prefix" not in rule
        assert "Filter" not in rule
    unfiltered = [r for r in rules if "TagFilters" not in r and r not in by_prefix]
    assert [set(r) - {"Id", "Status"} for r in unfiltered] == [
        {"AbortIncompleteMultipartUpload", "ExpiredObjectDeleteMarker"}
    ]


def test_the_restore_coordinators_objects_expire_after_a_few_days_and_nothing_under_agents_by_prefix(
    bare_stack: Stack, fleet: Fleet
) -> None:
    storage, template = _storage(bare_stack, fleet)
    rules = _backup_bucket(bare_stack, storage, template)["Properties"]["LifecycleConfiguration"]["Rules"]
    (rule,) = [r for r in rules if r["Id"] == "expire-restore-objects"]
    assert rule == {
        "Id": "expire-restore-objects",
        "Status": "Enabled",
        "Prefix": "restores/",
        "ExpirationInDays": RESTORE_OBJECTS_DAYS,
        "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    }
    assert 1 <= RESTORE_OBJECTS_DAYS <= 7  # outlives a restore's job deadline, never a backup
    assert not [r for r in rules if str(r.get("Prefix", "")).startswith(AGENT_PREFIX_ROOT)]
