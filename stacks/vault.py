"""The off-site vault: a second stack, in the vault's region and account, that S3 replication copies every
backup (and its manifest) into. Built only when the fleet declares ``pipeline.offsite``.

- **Bucket** ``<pipeline>-vault-<account>``: versioned, Object Lock with a *default* retention of
  ``Fleet.vault_retention_days()`` in ``offsite.object_lock_mode`` (compliance by default), SSE-KMS with the
  vault's own key (bucket key on), public access blocked, TLS only, ACLs off, server access logs. Its
  lifecycle keeps every copy ``retention_days`` and is never based on tags: tags replicate from the
  primary, and a tag must never shorten what the vault keeps.
- **Key** ``alias/<pipeline>-vault``: rotation on, retained; nobody may schedule its deletion or disable it
  (a deleted vault key destroys every copy).
- **Trust in the primary**, by role ARN (``aws:PrincipalArn``) on the primary account's root, so the
  policies deploy before those roles exist: the replication role may replicate objects and tags into
  ``agents/`` and use the key through S3; the watchdog and restore roles may read copies and decrypt them
  through S3. **Every principal of the primary account** is explicitly denied whatever deletes a copy,
  shortens its keep or reconfigures the vault (``DENY_PRIMARY_*``) — see ``_deny_primary`` for the
  same-account case.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_contracts.fleet import Fleet
from stacks.storage import ABORT_MULTIPART_DAYS, NONCURRENT_VERSION_DAYS, access_log_bucket
from stacks.vault_names import VaultNames

# What the replication role does in the vault (owner override only across accounts: S3 refuses it within
# one). Not s3:ReplicateDelete: the rule replicates no delete markers, and the vault denies it outright.
REPLICATE_ACTIONS = ("s3:ReplicateObject", "s3:ReplicateTags")
OWNER_OVERRIDE = "s3:ObjectOwnerOverrideToBucketOwner"
# Bucket-level reads AWS's cross-account replication setup asks of the destination. AWS's example also
# grants s3:PutBucketVersioning (its console turns versioning on); the vault is versioned with Object Lock,
# which can never be suspended, so the vault denies it instead.
REPLICATION_BUCKET_ACTIONS = ("s3:GetBucketVersioning", "s3:ListBucket")
# HeadObject (with or without a version; with ChecksumMode, which needs kms:Decrypt on SSE-KMS objects),
# GetObject of a manifest, presigned GETs of a version for the agent.
READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
LIST_ACTIONS = ("s3:ListBucket",)  # a copy not there yet answers 404, not 403
KEY_FOR_REPLICAS = ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")  # Decrypt: the bucket key check
KEY_FOR_READERS = ("kms:Decrypt",)
# What deletes a copy, shortens its keep, rewrites it or hands the vault to someone else.
DENY_PRIMARY_OBJECT_ACTIONS = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectLegalHold",
    "s3:PutObject",  # direct writes (an overwrite would make the copy noncurrent); replicas are ReplicateObject
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:ReplicateDelete",  # delete markers from the primary would hide every copy
)
DENY_PRIMARY_BUCKET_ACTIONS = (
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:DeleteBucket",
    "s3:PutReplicationConfiguration",
    "s3:PutEncryptionConfiguration",
)
DENY_KEY_ACTIONS = ("kms:ScheduleKeyDeletion", "kms:DisableKey")


class VaultStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, fleet: Fleet, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.fleet = fleet
        self.names = VaultNames.of(fleet)
        self.key = self._build_key()
        self.access_logs = access_log_bucket(self, "AccessLogs", logged="vault bucket")
        self.bucket = self._build_bucket()
        self._trust_the_primary()
        self._deny_primary()
        CfnOutput(self, "VaultBucketName", value=self.bucket.bucket_name, description="the off-site vault bucket")
        CfnOutput(self, "VaultKeyArn", value=self.key.key_arn, description="the vault's KMS key (every copy)")

    # --- the key ------------------------------------------------------------------------------------------
    def _build_key(self) -> kms.Key:
        names = self.names
        key = kms.Key(
            self,
            "Key",
            alias=names.key_alias,
            description=f"{names.pipeline}: off-site copies of the backups",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # In a key policy "*" is this key. The primary's roles are named on the primary account's root with
        # their ARN as a condition: KMS rejects a policy naming a role principal that does not exist yet.
        key.add_to_resource_policy(
            self._primary_statement(
                "AllowReplicationToEncryptReplicasThroughS3", [names.replication_role_arn], KEY_FOR_REPLICAS, ["*"]
            )
        )
        key.add_to_resource_policy(
            self._primary_statement(
                "AllowPipelineReadersToDecryptCopiesThroughS3", names.reader_role_arns, KEY_FOR_READERS, ["*"]
            )
        )
        # Not kms:PutKeyPolicy: that would fail KMS's lockout check and CloudFormation could never update the
        # key again. An administrator of the vault account can still remove this statement first; nobody of
        # the primary account has any right on this key beyond the two grants above.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyDeletingOrDisablingTheVaultKey",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=list(DENY_KEY_ACTIONS),
                resources=["*"],
            )
        )
        return key

    # --- the bucket ---------------------------------------------------------------------------------------
    def _build_bucket(self) -> s3.Bucket:
        names = self.names
        days = Duration.days(self.fleet.vault_retention_days())
        mode = self.fleet.pipeline.offsite.s3_mode  # type: ignore[union-attr]
        retention = s3.ObjectLockRetention.compliance if mode == "COMPLIANCE" else s3.ObjectLockRetention.governance
        return s3.Bucket(
            self,
            "Vault",
            bucket_name=names.bucket,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="vault/",
            # A floor under every copy that arrives without a retention of its own; no tag, lifecycle rule or
            # principal of the primary account can shorten it (compliance: nobody can).
            object_lock_enabled=True,
            object_lock_default_retention=retention(days),
            lifecycle_rules=[
                # Not filtered by tag or prefix: every copy is kept retention_days, whatever its tags say.
                s3.LifecycleRule(
                    id="expire-copies-after-retention",
                    expiration=days,
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_MULTIPART_DAYS),
                    expired_object_delete_marker=True,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _primary_statement(
        self, sid: str, role_arns: list[str], actions: tuple[str, ...], resources: list[str]
    ) -> iam.PolicyStatement:
        """An Allow for roles of the primary account, by ARN: the principal is the account (a role that does
        not exist yet cannot be a principal), ``aws:PrincipalArn`` names the roles. Across accounts the role's
        own identity policy must allow the call too; within one account the vault names them anyway."""
        conditions: dict[str, Any] = {"ArnEquals": {"aws:PrincipalArn": role_arns}}
        if any(action.startswith("kms:") for action in actions):
            conditions["StringEquals"] = {"kms:ViaService": self.names.s3_service}
        return iam.PolicyStatement(
            sid=sid,
            principals=[iam.ArnPrincipal(self.names.primary_root)],
            actions=list(actions),
            resources=resources,
            conditions=conditions,
        )

    def _trust_the_primary(self) -> None:
        names, bucket = self.names, self.bucket
        replicate = REPLICATE_ACTIONS if names.same_account else (*REPLICATE_ACTIONS, OWNER_OVERRIDE)
        statements = [
            self._primary_statement(
                "AllowReplicationIntoAgents", [names.replication_role_arn], replicate, [names.copies_arn]
            ),
            self._primary_statement(
                "AllowReplicationToCheckTheVault",
                [names.replication_role_arn],
                REPLICATION_BUCKET_ACTIONS,
                [bucket.bucket_arn],
            ),
            self._primary_statement(
                "AllowPipelineReadersToReadCopies", names.reader_role_arns, READ_ACTIONS, [names.copies_arn]
            ),
            self._primary_statement(
                "AllowPipelineReadersToListTheVault", names.reader_role_arns, LIST_ACTIONS, [bucket.bucket_arn]
            ),
        ]
        for statement in statements:
            bucket.add_to_resource_policy(statement)

    def _deny_primary(self) -> None:
        """Deny every principal of the primary account (``aws:PrincipalAccount``) what deletes, shortens or
        reconfigures. With a vault in another account that is everything the primary could do to it.

        With a vault in the primary's own account the reconfiguring Deny would also stop CloudFormation from
        ever updating the vault's policy or lifecycle, so there (only) it exempts the vault environment's CDK
        CloudFormation execution role, which only CloudFormation can assume: a compromised host, function or
        operator role still cannot touch the vault, but whoever can deploy can change its configuration (and
        the account root, whom S3 always lets change a bucket policy). The object Deny exempts nobody:
        CloudFormation never deletes or rewrites a copy. docs/deploy.md#off-site-vault says what each setup
        protects.
        """
        names, bucket = self.names, self.bucket
        everyone: dict[str, Any] = {"StringEquals": {"aws:PrincipalAccount": names.primary_account}}
        but_the_deployer = dict(everyone)
        if names.same_account:
            but_the_deployer["ArnNotLike"] = {"aws:PrincipalArn": names.deployer_role_pattern}
        denials = (
            (
                "DenyPrimaryAccountDeletingOrShorteningCopies",
                DENY_PRIMARY_OBJECT_ACTIONS,
                bucket.arn_for_objects("*"),
                everyone,
            ),
            (
                "DenyPrimaryAccountReconfiguringTheVault",
                DENY_PRIMARY_BUCKET_ACTIONS,
                bucket.bucket_arn,
                but_the_deployer,
            ),
        )
        for sid, actions, resource, conditions in denials:
            bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=list(actions),
                    resources=[resource],
                    conditions=conditions,
                )
            )
