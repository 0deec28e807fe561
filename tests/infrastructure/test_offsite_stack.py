"""The off-site vault on the synthesized templates (pipeline.offsite): the vault stack's bucket and key, the
replication rule and role on the backup bucket, and that a fleet without a vault gets exactly the stack it
got before. moto replicates nothing and enforces no Object Lock, so these properties are asserted here;
who may do what is the access matrix's (test_offsite_access_matrix.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from access_matrix.template import Env, resolved_resources
from aws_cdk import App, Stack, Token
from aws_cdk.assertions import Template
from conftest import OFFSITE, PRIMARY_ACCOUNT, VAULT_ACCOUNT, VAULT_REGION, Synthesized, vault_alone
from gates import CFN_LINT_ERROR, CFN_LINT_FATAL, acknowledgements, cfn_lint, violations

from backup_contracts.fleet import Fleet
from backup_contracts.naming import replication_role_name, vault_bucket_name, vault_key_alias, vault_stack_name
from stacks.app_factory import cdk_json_context
from stacks.offsite import OffsiteReplication
from stacks.storage import Storage
from stacks.vault import DENY_PRIMARY_BUCKET_ACTIONS, DENY_PRIMARY_OBJECT_ACTIONS
from stacks.vault_names import function_role_name

pytestmark = pytest.mark.infrastructure

VAULT_BUCKET = vault_bucket_name("backup-pipeline", VAULT_ACCOUNT)
ALIAS_ARN = f"arn:aws:kms:{VAULT_REGION}:{VAULT_ACCOUNT}:{vault_key_alias('backup-pipeline')}"


def _vault_bucket(vault: Any) -> dict[str, Any]:
    return vault.resources[vault.logical_id(vault.stack.bucket)]


def _vault_key(vault: Any) -> dict[str, Any]:
    return vault.resources[vault.logical_id(vault.stack.key)]


def _bucket_statements(vault: Any) -> dict[str, dict[str, Any]]:
    (policy,) = [
        p
        for p in vault.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": vault.logical_id(vault.stack.bucket)}
    ]
    return {s.get("Sid", f"#{i}"): s for i, s in enumerate(policy["Properties"]["PolicyDocument"]["Statement"])}


def _rule(synthesized: Any) -> dict[str, Any]:
    bucket = synthesized.resources[synthesized.logical_id(synthesized.stack.storage.bucket)]
    (rule,) = bucket["Properties"]["ReplicationConfiguration"]["Rules"]
    return dict(rule)


def _fleet_offsite(fleet_with: Callable[..., Fleet], **offsite: Any) -> Fleet:
    return fleet_with(pipeline={"offsite": {**OFFSITE, **offsite}})


# --- the app ------------------------------------------------------------------------------------------------
def test_an_offsite_fleet_adds_the_vault_stack_in_its_account_and_region_deployed_first(
    offsite_synthesized: Any,
) -> None:
    vault, stack = offsite_synthesized.vault.stack, offsite_synthesized.stack
    assert vault.stack_name == vault_stack_name("backup-pipeline") == "backup-pipeline-vault"
    assert (vault.account, vault.region) == (VAULT_ACCOUNT, VAULT_REGION)
    assert stack.account == PRIMARY_ACCOUNT  # `cdk deploy` refuses credentials of another account
    assert vault in stack.dependencies


def test_a_fleet_without_offsite_is_one_environment_agnostic_stack(synthesized: Synthesized) -> None:
    stacks = [child for child in synthesized.app.node.children if isinstance(child, Stack)]
    assert stacks == [synthesized.stack]
    assert synthesized.stack.offsite is None
    assert Token.is_unresolved(synthesized.stack.account)  # deploys where the credentials point


def test_without_offsite_the_pipeline_stack_has_no_replication_no_fixed_role_names_and_no_vault(
    synthesized: Synthesized,
) -> None:
    text = json.dumps(synthesized.template.to_json())
    assert "ReplicationConfiguration" not in text
    assert "vault" not in text.lower()
    roles = synthesized.of_type("AWS::IAM::Role")
    assert [r for r in roles.values() if "RoleName" in r["Properties"]] == []


def _resolved(synthesized: Any) -> dict[str, Any]:
    """Every resource with its intrinsics resolved (so an account literal equals its AWS::AccountId), without
    Lambda code (its asset hash follows the fleet file)."""
    resources = resolved_resources(
        synthesized.template.to_json(), stack_name=synthesized.stack.stack_name, env=Env(account=PRIMARY_ACCOUNT)
    )
    for resource in resources.values():
        resource.get("Properties", {}).pop("Code", None)
    return resources


def test_offsite_changes_the_pipeline_stack_only_by_replication_and_the_vault_readers(
    synthesized: Synthesized, offsite_synthesized: Any
) -> None:
    """So a fleet without a vault gets exactly the stack it got before the vault existed."""
    base, offsite = _resolved(synthesized), _resolved(offsite_synthesized)
    stack = offsite_synthesized.stack
    added = set(offsite) - set(base)
    raw = offsite_synthesized.resources
    assert added == {offsite_synthesized.logical_id(stack.offsite.role), _default_policy_id(raw, stack)}
    assert set(base) - set(offsite) == set()
    changed = {
        (logical_id, key)
        for logical_id in base
        for key in set(base[logical_id]["Properties"]) | set(offsite[logical_id]["Properties"])
        if base[logical_id]["Properties"].get(key) != offsite[logical_id]["Properties"].get(key)
    }
    bucket = offsite_synthesized.logical_id(stack.storage.bucket)
    readers = {name: stack.functions.functions[name].role for name in ("watchdog", "restore")}
    role_ids = {offsite_synthesized.logical_id(role) for role in readers.values()}
    policy_ids = {_default_policy_id(raw, stack, role_id) for role_id in role_ids}
    functions = {offsite_synthesized.logical_id(stack.functions.functions[name]) for name in readers}
    assert changed == (
        {(bucket, "ReplicationConfiguration")}
        | {(r, "RoleName") for r in role_ids}
        | {(p, "PolicyDocument") for p in policy_ids}
        # the fixed names, where the role is named: the functions' Role (its ARN), the policies' Roles
        | {(f, "Role") for f in functions}
        | {(p, "Roles") for p in policy_ids}
    )
    for policy_id in policy_ids:
        before = base[policy_id]["Properties"]["PolicyDocument"]["Statement"]
        after = offsite[policy_id]["Properties"]["PolicyDocument"]["Statement"]
        assert [s for s in after if s not in before] == [s for s in after if "Vault" in s.get("Sid", "")]
        assert {s["Sid"] for s in after if s not in before} == {
            "ReadVaultCopies",
            "ListVault",
            "DecryptVaultCopiesThroughS3",
        }
        assert [s for s in before if s not in after] == []


def _default_policy_id(resources: dict[str, Any], stack: Any, role_id: str | None = None) -> str:
    role_id = role_id or stack.get_logical_id(stack.offsite.role.node.default_child)
    (policy_id,) = [
        k
        for k, v in resources.items()
        if v["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in v["Properties"]["Roles"]
    ]
    return policy_id


# --- the vault bucket ---------------------------------------------------------------------------------------
def test_the_vault_bucket_has_its_fixed_name_versioning_and_a_retained_object_lock_floor(
    offsite_synthesized: Any, fleet: Fleet
) -> None:
    bucket = _vault_bucket(offsite_synthesized.vault)
    properties = bucket["Properties"]
    assert properties["BucketName"] == VAULT_BUCKET
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["ObjectLockEnabled"] is True
    # the default retention is the floor of every copy: the longest tier of any class, compliance by default
    assert properties["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Days": fleet.vault_retention_days(), "Mode": "COMPLIANCE"}},
    }
    assert fleet.vault_retention_days() == 400
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_the_vault_keeps_retention_days_in_the_mode_the_fleet_names(fleet_with: Callable[..., Fleet]) -> None:
    vault = vault_alone(_fleet_offsite(fleet_with, retention_days=30, object_lock_mode="governance"))
    properties = _vault_bucket(vault)["Properties"]
    assert properties["ObjectLockConfiguration"]["Rule"] == {"DefaultRetention": {"Days": 30, "Mode": "GOVERNANCE"}}
    (expire, _) = properties["LifecycleConfiguration"]["Rules"]
    assert expire["ExpirationInDays"] == 30


def test_the_vault_bucket_is_sse_kms_with_its_own_key_private_tls_only_and_logged(offsite_synthesized: Any) -> None:
    vault = offsite_synthesized.vault
    properties = _vault_bucket(vault)["Properties"]
    assert properties["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {
                "BucketKeyEnabled": True,
                "ServerSideEncryptionByDefault": {
                    "KMSMasterKeyID": {"Fn::GetAtt": [vault.logical_id(vault.stack.key), "Arn"]},
                    "SSEAlgorithm": "aws:kms",
                },
            }
        ]
    }
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert properties["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": vault.logical_id(vault.stack.access_logs)},
        "LogFilePrefix": "vault/",
    }
    tls = [
        s
        for s in _bucket_statements(vault).values()
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert [s["Action"] for s in tls] == ["s3:*"]


def test_the_vault_lifecycle_keeps_every_copy_retention_days_and_never_filters_by_tag(
    offsite_synthesized: Any,
) -> None:
    rules = _vault_bucket(offsite_synthesized.vault)["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules == [
        {
            "ExpirationInDays": 400,
            "Id": "expire-copies-after-retention",
            "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
            "Status": "Enabled",
        },
        {
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            "ExpiredObjectDeleteMarker": True,
            "Id": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
        },
    ]
    for rule in rules:  # tags replicate from the primary: a tag must never shorten what the vault keeps
        assert not {"TagFilters", "Prefix", "Filter", "ObjectSizeGreaterThan"} & set(rule)


def test_the_vault_key_rotates_is_retained_aliased_and_can_never_be_deleted_or_disabled(
    offsite_synthesized: Any,
) -> None:
    vault = offsite_synthesized.vault
    key = _vault_key(vault)
    assert key["Properties"]["EnableKeyRotation"] is True
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")
    (alias,) = vault.of_type("AWS::KMS::Alias").values()
    assert alias["Properties"]["AliasName"] == vault_key_alias("backup-pipeline") == "alias/backup-pipeline-vault"
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Action"] == ["kms:DisableKey", "kms:ScheduleKeyDeletion"]
    assert deny["Principal"] == {"AWS": "*"}
    # KMS's lockout check: the vault account (CloudFormation's role through it) may still PutKeyPolicy
    (root,) = [s for s in statements if s["Action"] == "kms:*"]
    assert root["Effect"] == "Allow"
    assert "Condition" not in root
    assert f":iam::{VAULT_ACCOUNT}:root" in json.dumps(root["Principal"])


def test_the_vault_trusts_the_primary_roles_by_arn_on_the_primary_account(offsite_synthesized: Any) -> None:
    statements = _bucket_statements(offsite_synthesized.vault)
    key_statements = {
        s.get("Sid"): s for s in _vault_key(offsite_synthesized.vault)["Properties"]["KeyPolicy"]["Statement"]
    }
    role = f"arn:aws:iam::{PRIMARY_ACCOUNT}:role/"
    expected = {
        "AllowReplicationIntoAgents": [f"{role}{replication_role_name('backup-pipeline')}"],
        "AllowReplicationToCheckTheVault": [f"{role}backup-pipeline-replication"],
        "AllowPipelineReadersToReadCopies": [
            f"{role}{function_role_name('backup-pipeline', f)}" for f in ("watchdog", "restore")
        ],
        "AllowPipelineReadersToListTheVault": [
            f"{role}backup-pipeline-watchdog-function",
            f"{role}backup-pipeline-restore-function",
        ],
    }
    for sid, roles in expected.items():
        # the account, not the role, is the principal: S3 and KMS refuse a role that does not exist yet
        assert statements[sid]["Principal"] == {"AWS": f"arn:aws:iam::{PRIMARY_ACCOUNT}:root"}
        assert statements[sid]["Condition"]["ArnEquals"] == {"aws:PrincipalArn": roles}
    for sid in ("AllowReplicationToEncryptReplicasThroughS3", "AllowPipelineReadersToDecryptCopiesThroughS3"):
        assert key_statements[sid]["Principal"] == {"AWS": f"arn:aws:iam::{PRIMARY_ACCOUNT}:root"}
        assert key_statements[sid]["Condition"]["StringEquals"] == {
            "kms:ViaService": f"s3.{VAULT_REGION}.amazonaws.com"
        }
    assert "s3:ReplicateDelete" not in json.dumps(statements["AllowReplicationIntoAgents"])


def test_across_accounts_every_primary_principal_is_denied_without_exception(offsite_synthesized: Any) -> None:
    statements = _bucket_statements(offsite_synthesized.vault)
    for sid, actions in (
        ("DenyPrimaryAccountDeletingOrShorteningCopies", DENY_PRIMARY_OBJECT_ACTIONS),
        ("DenyPrimaryAccountReconfiguringTheVault", DENY_PRIMARY_BUCKET_ACTIONS),
    ):
        assert statements[sid]["Effect"] == "Deny"
        assert statements[sid]["Principal"] == {"AWS": "*"}
        assert sorted(statements[sid]["Action"]) == sorted(actions)
        assert statements[sid]["Condition"] == {"StringEquals": {"aws:PrincipalAccount": PRIMARY_ACCOUNT}}


def test_a_same_account_vault_exempts_only_its_deployer_and_only_from_reconfiguring(
    fleet_with: Callable[..., Fleet],
) -> None:
    vault = vault_alone(_fleet_offsite(fleet_with, account=PRIMARY_ACCOUNT))
    statements = _bucket_statements(vault)
    role = f"arn:aws:iam::{PRIMARY_ACCOUNT}:role/"
    assert statements["DenyPrimaryAccountDeletingOrShorteningCopies"]["Condition"] == {
        "StringEquals": {"aws:PrincipalAccount": PRIMARY_ACCOUNT}
    }
    assert statements["DenyPrimaryAccountReconfiguringTheVault"]["Condition"] == {
        "StringEquals": {"aws:PrincipalAccount": PRIMARY_ACCOUNT},
        "ArnNotLike": {"aws:PrincipalArn": f"{role}cdk-*-cfn-exec-role-{PRIMARY_ACCOUNT}-{VAULT_REGION}"},
    }
    # S3 refuses an owner override within one account
    assert "s3:ObjectOwnerOverrideToBucketOwner" not in json.dumps(statements["AllowReplicationIntoAgents"])


# --- replication ----------------------------------------------------------------------------------------------
def test_the_replication_rule_copies_agents_to_the_vault_under_its_key_without_delete_markers(
    offsite_synthesized: Any,
) -> None:
    rule = _rule(offsite_synthesized)
    assert rule["Filter"] == {"Prefix": "agents/"}  # the backups and their manifests (V2 schema)
    assert rule["Status"] == "Enabled"
    assert rule["DeleteMarkerReplication"] == {"Status": "Disabled"}
    assert rule["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    destination = rule["Destination"]
    assert destination["Bucket"] == f"arn:aws:s3:::{VAULT_BUCKET}"
    assert destination["EncryptionConfiguration"] == {"ReplicaKmsKeyID": ALIAS_ARN}
    assert destination["Account"] == VAULT_ACCOUNT
    assert destination["AccessControlTranslation"] == {"Owner": "Destination"}


def test_replication_time_control_comes_with_its_metrics(offsite_synthesized: Any) -> None:
    destination = _rule(offsite_synthesized)["Destination"]
    assert destination["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    assert destination["Metrics"] == {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}


def _replication_alone(fleet: Fleet) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the replication rule, every resource) of Storage and OffsiteReplication alone on a bare stack."""
    stack = Stack(App(context=cdk_json_context()), "Bare")
    storage = Storage(stack, "Storage", fleet=fleet)
    OffsiteReplication(stack, "Offsite", fleet=fleet, bucket=storage.bucket, key=storage.key, readers={})
    resources = Template.from_stack(stack).to_json()["Resources"]
    bucket = resources[stack.get_logical_id(storage.bucket.node.default_child)]  # type: ignore[arg-type]
    (rule,) = bucket["Properties"]["ReplicationConfiguration"]["Rules"]
    return rule, resources


def test_without_replication_time_control_there_are_no_rtc_or_metrics(fleet_with: Callable[..., Fleet]) -> None:
    rule, _ = _replication_alone(_fleet_offsite(fleet_with))
    assert not {"ReplicationTime", "Metrics"} & set(rule["Destination"])


def test_a_same_account_vault_gets_no_owner_override(fleet_with: Callable[..., Fleet]) -> None:
    rule, resources = _replication_alone(_fleet_offsite(fleet_with, account=PRIMARY_ACCOUNT))
    assert not {"Account", "AccessControlTranslation"} & set(rule["Destination"])
    assert "s3:ObjectOwnerOverrideToBucketOwner" not in json.dumps(resources)


def test_the_replication_role_has_its_fixed_name_and_only_s3_of_this_account_assumes_it(
    offsite_synthesized: Any,
) -> None:
    role = offsite_synthesized.resources[offsite_synthesized.logical_id(offsite_synthesized.stack.offsite.role)]
    assert role["Properties"]["RoleName"] == "backup-pipeline-replication"
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "s3.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": PRIMARY_ACCOUNT}}
    assert "ManagedPolicyArns" not in role["Properties"]


def test_the_vault_readers_get_fixed_role_names_and_the_others_keep_generated_ones(offsite_synthesized: Any) -> None:
    stack = offsite_synthesized.stack
    names = {
        name: offsite_synthesized.resources[offsite_synthesized.logical_id(f.role)]["Properties"].get("RoleName")
        for name, f in stack.functions.functions.items()
    }
    assert names == {
        "dispatcher": None,
        "audit": None,
        "watchdog": "backup-pipeline-watchdog-function",
        "restore": "backup-pipeline-restore-function",
    }


# --- gates ------------------------------------------------------------------------------------------------------
def test_cdk_nag_passes_both_stacks_with_specific_acknowledgements(offsite_synthesized: Any) -> None:
    assert violations(offsite_synthesized.outdir) == []
    for name in (offsite_synthesized.stack.stack_name, offsite_synthesized.vault.stack.stack_name):
        found = acknowledgements(offsite_synthesized.outdir, name)
        assert found, name
        for rule, reason in found.items():
            assert len(reason.split()) >= 8, (rule, reason)
            if "IAM5" in rule:
                assert "[" in rule, rule
    vault = acknowledgements(offsite_synthesized.outdir, offsite_synthesized.vault.stack.stack_name)
    (rule,) = vault  # the access-log bucket logs nowhere: the vault stack's only acknowledgement
    assert rule.endswith("AwsSolutions-S1")
    assert "/AccessLogs" in rule


@pytest.mark.parametrize("which", ["pipeline", "vault"])
def test_cfn_lint_finds_no_errors_in_the_offsite_templates(offsite_synthesized: Any, which: str) -> None:
    stack = offsite_synthesized.stack if which == "pipeline" else offsite_synthesized.vault.stack
    result = cfn_lint(offsite_synthesized.outdir / f"{stack.stack_name}.template.json")
    assert result.returncode & (CFN_LINT_ERROR | CFN_LINT_FATAL) == 0, result.stdout + result.stderr
