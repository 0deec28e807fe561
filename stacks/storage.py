"""Storage: the customer-managed KMS key and the backup bucket (plus its access-log bucket)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from backup_contracts.fleet import Fleet
from backup_contracts.naming import RESTORE_OBJECTS_DAYS, RESTORE_PREFIX_ROOT, RETENTION_TAG, retention_tag_value
from backup_contracts.wal import WAL_TIER, wal_retention_days
from stacks.nag import acknowledge

NONCURRENT_VERSION_DAYS = 7
ABORT_MULTIPART_DAYS = 1
ACCESS_LOG_DAYS = 365
SSE_HEADER = "s3:x-amz-server-side-encryption"
SSE_KEY_HEADER = "s3:x-amz-server-side-encryption-aws-kms-key-id"


def access_log_bucket(scope: Construct, construct_id: str, *, logged: str) -> s3.Bucket:
    """The server access log bucket of ``logged``: S3 delivers access logs only to an SSE-S3 bucket (not
    SSE-KMS) without Object Lock; versioned, private, TLS only, logs kept ACCESS_LOG_DAYS."""
    logs = s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=Duration.days(ACCESS_LOG_DAYS),
                noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(ABORT_MULTIPART_DAYS),
            )
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )
    acknowledge(
        logs,
        "AwsSolutions-S1",
        f"This is the server access log bucket of the {logged}; logging it into itself would loop.",
    )
    return logs


class Storage(Construct):
    """KMS key (rotation on) and a versioned, SSE-KMS, TLS-only bucket with per-retention-tier lifecycle."""

    def __init__(self, scope: Construct, construct_id: str, *, fleet: Fleet) -> None:
        super().__init__(scope, construct_id)
        self.key = self._build_key(fleet)
        self.access_logs = access_log_bucket(self, "AccessLogs", logged="backup bucket")
        self.bucket = self._build_bucket(fleet)

    def _build_key(self, fleet: Fleet) -> kms.Key:
        key = kms.Key(
            self,
            "Key",
            description=f"{fleet.pipeline.name}: backups, ledger, queues and alerts",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # CloudWatch alarms publish to the KMS-encrypted alert topic; they need to use the key for that.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKeyForTheAlertTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        return key

    def _build_bucket(self, fleet: Fleet) -> s3.Bucket:
        lock = fleet.pipeline.object_lock
        bucket = s3.Bucket(
            self,
            "Backups",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            versioned=True,  # Object Lock needs it; once Object Lock is on, neither can be turned off
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="backups/",
            lifecycle_rules=self._lifecycle_rules(fleet),
            object_lock_enabled=True if lock.enabled else None,
            removal_policy=RemovalPolicy.RETAIN,
        )
        if lock.enabled:
            self._enable_object_lock(bucket)
        self._deny_other_encryption(bucket)
        return bucket

    @staticmethod
    def _enable_object_lock(bucket: s3.Bucket) -> None:
        """Object Lock with NO default retention: the audit sets each verified backup's retention from its
        GFS tier (a default would lock unverified uploads too, and every object for the same time).

        ``ObjectLockEnabled`` alone is what CDK emits; the explicit ``ObjectLockConfiguration`` (without a
        rule) is what S3's PutObjectLockConfiguration takes to turn Object Lock on for a bucket that exists
        already, so a stack deployed with ``object_lock.enabled: false`` is updated in place.
        """
        cfn = bucket.node.default_child
        assert isinstance(cfn, s3.CfnBucket)  # noqa: S101 - a Bucket's default child is its CfnBucket
        cfn.object_lock_configuration = s3.CfnBucket.ObjectLockConfigurationProperty(object_lock_enabled="Enabled")

    @staticmethod
    def _lifecycle_rules(fleet: Fleet) -> list[s3.LifecycleRule]:
        """One expiry rule per retention class and tier, matched by the tag the audit sets after verifying.

        No rule matches ``retention=keep`` (the newest ``keep_last`` good backups of a target) or an untagged
        object, so neither is ever expired by age. With PITR targets, one more rule per retention class they use
        expires their archived WAL (``retention=<class>-wal``) ``daily_days + 1`` days after it was written. The
        restore coordinator's objects under ``restores/`` (point-in-time restores' WAL indexes, whose URLs live
        a job deadline) expire after ``RESTORE_OBJECTS_DAYS``, by prefix: no backup lives there.
        """
        rules = [
            s3.LifecycleRule(
                id=f"retention-{value}",
                tag_filters={RETENTION_TAG: value},
                expiration=Duration.days(days),
                noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
            )
            for class_name, retention_class in sorted(fleet.retention_classes.items())
            for tier, days in retention_class.tiers().items()
            for value in [retention_tag_value(class_name, tier)]
        ]
        wal_classes = sorted({target.retention for _, target in fleet.targets() if target.pitr})
        rules += [  # archived WAL of PITR targets (backup_contracts.wal): the point-in-time window, and a day
            s3.LifecycleRule(
                id=f"retention-{value}",
                tag_filters={RETENTION_TAG: value},
                expiration=Duration.days(wal_retention_days(fleet.retention_classes[class_name].daily_days)),
                noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
            )
            for class_name in wal_classes
            for value in [retention_tag_value(class_name, WAL_TIER)]
        ]
        rules.append(  # the restore coordinator's own objects (WAL indexes): needed only while a restore runs
            s3.LifecycleRule(
                id="expire-restore-objects",
                prefix=f"{RESTORE_PREFIX_ROOT}/",
                expiration=Duration.days(RESTORE_OBJECTS_DAYS),
                noncurrent_version_expiration=Duration.days(1),
            )
        )
        rules.append(
            s3.LifecycleRule(
                id="abort-incomplete-multipart-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(ABORT_MULTIPART_DAYS),
                expired_object_delete_marker=True,
            )
        )
        return rules

    def deny_overwrites_by(self, roles: Sequence[iam.IRole]) -> None:
        """These roles (the agents') may only create new keys: an object-creating request (PutObject,
        CompleteMultipartUpload; ``s3:ObjectCreationOperation`` true) without ``If-None-Match`` is denied, so a
        host cannot replace a stored backup (whose old version would then expire as noncurrent). Create,
        UploadPart and the tagless CreateMultipartUpload take no conditional header and are not creations.
        The principals are matched by ``aws:PrincipalArn`` (role ARNs, as AWS recommends for role sessions)."""
        if not roles:
            return
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyAgentsOverwritingObjects",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects("*")],
                conditions={
                    "ArnEquals": {"aws:PrincipalArn": [role.role_arn for role in roles]},
                    "Bool": {"s3:ObjectCreationOperation": "true"},
                    "Null": {"s3:if-none-match": "true"},
                },
            )
        )

    def _deny_other_encryption(self, bucket: s3.Bucket) -> None:
        """Every object is SSE-KMS with this key: a put may omit the headers (bucket default) but never override it.

        Statement 1 denies any SSE other than aws:kms (e.g. AES256). Statement 2 denies naming another key.
        Statement 3 closes the gap where ``aws:kms`` without a key id would fall back to the AWS-managed aws/s3 key.

        Statements 1 and 2 apply only when the header is present (``Null: false``): ``UploadPart`` and
        ``CompleteMultipartUpload`` are authorised as ``s3:PutObject`` and carry no SSE header, and a negated
        (or ``...IfExists``) condition on a missing key is true, so without ``Null`` the Deny would hit every
        part of every multipart upload. A part is encrypted as its upload was created (with this key), and a
        put without headers gets the bucket default (this key).
        """
        objects = bucket.arn_for_objects("*")
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyPutWithoutKmsEncryption",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[objects],
                conditions={
                    "StringNotEquals": {SSE_HEADER: "aws:kms"},
                    "Null": {SSE_HEADER: "false"},
                },
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyPutWithAnotherKmsKey",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[objects],
                conditions={
                    "StringNotEquals": {SSE_KEY_HEADER: self.key.key_arn},
                    "Null": {SSE_KEY_HEADER: "false"},
                },
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyPutWithKmsButNoKeyId",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[objects],
                conditions={
                    "StringEquals": {SSE_HEADER: "aws:kms"},
                    "Null": {SSE_KEY_HEADER: "true"},
                },
            )
        )
