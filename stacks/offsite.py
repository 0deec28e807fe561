"""The primary side of the off-site vault: S3 replication of every backup into the vault, and the vault
reads of the functions that verify and restore copies. Built only when the fleet declares ``pipeline.offsite``
(the vault itself is ``stacks/vault.py``, another stack in another region and usually another account).

One replication rule copies what is under ``agents/`` (the backups and their manifests) to the vault,
SSE-KMS under the vault's key (named by its alias ARN: its id is not known here), owned by the vault's
account, without delete markers (a delete in the primary never reaches the vault), with Replication Time
Control and its metrics when ``replication_time_control`` is set. Objects written before the rule existed
are not replicated (S3 Batch Replication copies them; docs/deploy.md#off-site-vault).

The replication role (fixed name ``<pipeline>-replication``, which the vault trusts by ARN) may do only
what replication does: read the rule and the backup versions with their tags and locks, decrypt them with
the pipeline key through S3, replicate objects and tags into the vault's ``agents/`` and encrypt them with
the vault key through S3 in the vault's region.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_contracts.fleet import Fleet
from backup_contracts.naming import AGENT_PREFIX_ROOT, replication_role_name
from stacks.function_access import FunctionAccess
from stacks.nag import acknowledge
from stacks.vault import KEY_FOR_REPLICAS, OWNER_OVERRIDE, REPLICATE_ACTIONS, REPLICATION_BUCKET_ACTIONS
from stacks.vault_names import VaultNames

RULE_ID = "offsite-vault"
REPLICATED_PREFIX = f"{AGENT_PREFIX_ROOT}/"  # the backups and their manifests
RTC_MINUTES = 15  # S3 Replication Time Control: 99.99 % of objects within 15 minutes
SOURCE_BUCKET_ACTIONS = ("s3:GetReplicationConfiguration", "s3:ListBucket")
# s3:GetObjectRetention and s3:GetObjectLegalHold: replication of an Object Lock bucket copies the locks.
SOURCE_OBJECT_ACTIONS = (
    "s3:GetObjectVersionForReplication",
    "s3:GetObjectVersionAcl",
    "s3:GetObjectVersionTagging",
    "s3:GetObjectRetention",
    "s3:GetObjectLegalHold",
)


class OffsiteReplication(Construct):
    """The replication role and rule on ``bucket``, and the vault reads of ``readers`` (watchdog, restore)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        fleet: Fleet,
        bucket: s3.Bucket,
        key: kms.IKey,
        readers: Mapping[str, FunctionAccess],
    ) -> None:
        super().__init__(scope, construct_id)
        self.vault = VaultNames.of(fleet)
        self.replication_time_control = fleet.pipeline.offsite.replication_time_control  # type: ignore[union-attr]
        self.role = self._build_role(bucket, key)
        self._configure(bucket)
        for access in readers.values():
            access.read_vault_copies(self.vault)
            self._acknowledge_vault_wildcards(access.role, "reads copies back (verifies and restores them)")

    def _build_role(self, bucket: s3.Bucket, key: kms.IKey) -> iam.Role:
        vault, stack = self.vault, Stack.of(self)
        # aws:SourceAccount, not the bucket's ARN: the bucket's replication rule names this role, so a trust
        # naming the bucket would make each depend on the other.
        role = iam.Role(
            self,
            "Role",
            role_name=replication_role_name(vault.pipeline),
            assumed_by=iam.ServicePrincipal("s3.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description=f"{vault.pipeline}: S3 replication of the backups into the off-site vault",
        )
        objects = bucket.arn_for_objects(f"{AGENT_PREFIX_ROOT}/*")
        replicate = REPLICATE_ACTIONS if vault.same_account else (*REPLICATE_ACTIONS, OWNER_OVERRIDE)
        statements = [
            iam.PolicyStatement(
                sid="ReadReplicationConfiguration", actions=list(SOURCE_BUCKET_ACTIONS), resources=[bucket.bucket_arn]
            ),
            iam.PolicyStatement(
                sid="ReadBackupVersionsForReplication", actions=list(SOURCE_OBJECT_ACTIONS), resources=[objects]
            ),
            iam.PolicyStatement(
                sid="DecryptBackupsThroughS3",
                actions=["kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}},
            ),
            iam.PolicyStatement(sid="ReplicateIntoTheVault", actions=list(replicate), resources=[vault.copies_arn]),
            iam.PolicyStatement(
                sid="CheckTheVault", actions=list(REPLICATION_BUCKET_ACTIONS), resources=[vault.bucket_arn]
            ),
            iam.PolicyStatement(
                sid="EncryptCopiesWithTheVaultKeyThroughS3",
                actions=list(KEY_FOR_REPLICAS),
                resources=[vault.keys_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": vault.s3_service},
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": [vault.key_alias]},
                },
            ),
        ]
        for statement in statements:
            role.add_to_policy(statement)
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Replication reads every backup version under agents/ (keys are generated per run); object-level"
            " reads for replication only, no delete and no other prefix.",
            applies_to=[f"Resource::<{stack.get_logical_id(bucket.node.default_child)}.Arn>/{AGENT_PREFIX_ROOT}/*"],  # type: ignore[arg-type]
        )
        self._acknowledge_vault_wildcards(role, "replicates every backup and manifest into it")
        return role

    def _acknowledge_vault_wildcards(self, role: iam.IRole, what: str) -> None:
        vault = self.vault
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            f"The off-site vault holds a copy of every backup under agents/, and this role {what}; the vault's"
            " own bucket policy admits this role by name and denies every delete.",
            applies_to=[f"Resource::{vault.copies_arn}"],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "The vault key lives in another stack (region, account) and its id is unknown at synth; the grant"
            " is narrowed to the key carrying the vault alias (kms:ResourceAliases), used only through S3.",
            applies_to=[f"Resource::{vault.keys_arn}"],
        )

    def _configure(self, bucket: s3.Bucket) -> None:
        vault = self.vault
        rtc = self.replication_time_control
        minutes = s3.CfnBucket.ReplicationTimeValueProperty(minutes=RTC_MINUTES)
        destination = s3.CfnBucket.ReplicationDestinationProperty(
            bucket=vault.bucket_arn,
            # Owner override only across accounts (S3 refuses it when both buckets have one owner); the vault
            # enforces bucket-owner ownership anyway.
            account=None if vault.same_account else vault.account,
            access_control_translation=None
            if vault.same_account
            else s3.CfnBucket.AccessControlTranslationProperty(owner="Destination"),
            encryption_configuration=s3.CfnBucket.EncryptionConfigurationProperty(
                replica_kms_key_id=vault.key_alias_arn
            ),
            replication_time=s3.CfnBucket.ReplicationTimeProperty(status="Enabled", time=minutes) if rtc else None,
            metrics=s3.CfnBucket.MetricsProperty(status="Enabled", event_threshold=minutes) if rtc else None,
        )
        rule = s3.CfnBucket.ReplicationRuleProperty(
            id=RULE_ID,
            status="Enabled",
            priority=1,
            filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=REPLICATED_PREFIX),
            destination=destination,
            delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(status="Disabled"),
            source_selection_criteria=s3.CfnBucket.SourceSelectionCriteriaProperty(
                sse_kms_encrypted_objects=s3.CfnBucket.SseKmsEncryptedObjectsProperty(status="Enabled")
            ),
        )
        cfn = bucket.node.default_child
        assert isinstance(cfn, s3.CfnBucket)  # noqa: S101 - a Bucket's default child is its CfnBucket
        cfn.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
            role=self.role.role_arn, rules=[rule]
        )
