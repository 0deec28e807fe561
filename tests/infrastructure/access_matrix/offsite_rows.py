"""The off-site vault's rows: who may do what to the vault, and what replication may do on both sides.

``OFFSITE_ROWS`` are evaluated against the pipeline stack of a fleet whose vault lives in **another account**
(tests/infrastructure/conftest.py ``offsite_synthesized``), with the vault stack's bucket and key policies as
the resource policies of the vault's ARNs (another template, account and region): every request of a
pipeline role on the vault is a cross-account request, allowed only when both its own identity policy and
the vault's policy allow it. ``SAME_ACCOUNT_VAULT_ROWS`` are evaluated against a vault in the pipeline's
own account (the vault stack alone), where the account's administrators and its deployer are the question.
The placeholders are ``matrix.vault_names``'s; rows.py's header says how rows work.
"""

from __future__ import annotations

from .rows import (
    AGENT,
    ALLOWED,
    AUDIT,
    BUCKET,
    DENIED,
    DISPATCHER,
    FOREIGN,
    FOREIGN_ACCOUNT,
    KEY,
    LAMBDA,
    NONE,
    OUTSIDE_AGENTS,
    OWN_BACKUP,
    PLAIN_HTTP,
    RESTORE,
    S3_LOGGING,
    VIA_S3,
    WATCHDOG,
    Context,
    Row,
)
from .template import ACCOUNT, REGION
from .vault_principals import ADMIN, DEPLOYER, REPLICATION

S3 = "s3.amazonaws.com"

# --- resources ----------------------------------------------------------------------------------------------
VAULT_BUCKET = "{vault_bucket}"
VAULT_COPY = "{vault_copy}"  # the copy of the first agent's backup (same key as in the primary bucket)
VAULT_MANIFEST = "{vault_manifest}"  # the copy of its manifest
VAULT_OUTSIDE_AGENTS = "{vault_outside_agents}"  # a key outside agents/: replication never writes there
VAULT_KEY = "{vault_key}"
VAULT_ACCESS_LOG = "{vault_access_log}"  # an object of the vault's access-log bucket
REPLICATION_ROLE = "{replication_role}"

# --- request context --------------------------------------------------------------------------------------------
# What KMS sees when S3 in the vault's region uses the vault key for a caller of the pipeline's account: the
# key's aliases are part of every request to it (identity policies name the key by its alias).
VIA_VAULT_S3: Context = {
    "kms:ViaService": "{vault_s3}",
    "kms:CallerAccount": ACCOUNT,
    "kms:ResourceAliases": ("{vault_key_alias}",),
}
VAULT_KEY_DIRECT: Context = {"kms:CallerAccount": ACCOUNT, "kms:ResourceAliases": ("{vault_key_alias}",)}
VAULT_KEY_VIA_PRIMARY_S3: Context = {  # S3 of the primary's region: not where the vault key is used
    "kms:ViaService": f"s3.{REGION}.amazonaws.com",
    "kms:CallerAccount": ACCOUNT,
    "kms:ResourceAliases": ("{vault_key_alias}",),
}
SHORTEN_LOCK: Context = {  # PutObjectRetention to a date sooner than the copy's lock
    "s3:object-lock-mode": "GOVERNANCE",
    "s3:object-lock-retain-until-date": "2026-01-03T00:00:00Z",
}
FROM_THIS_ACCOUNT: Context = {"aws:SourceAccount": ACCOUNT}  # S3 replication of a bucket of this account
FROM_FOREIGN_ACCOUNT: Context = {"aws:SourceAccount": FOREIGN_ACCOUNT}
FROM_VAULT: Context = {"aws:SourceArn": VAULT_BUCKET, "aws:SourceAccount": "{vault_account}"}
FROM_FOREIGN_BUCKET: Context = {"aws:SourceArn": "arn:aws:s3:::elsewhere", "aws:SourceAccount": FOREIGN_ACCOUNT}

# --- statements rows name as what decides them ------------------------------------------------------------------
DENY_DELETING = "DenyPrimaryAccountDeletingOrShorteningCopies"  # stacks/vault.py
DENY_RECONFIGURING = "DenyPrimaryAccountReconfiguringTheVault"
DENY_KEY_DELETION = "DenyDeletingOrDisablingTheVaultKey"

# What no principal of the pipeline's account may do to the vault, whatever its own policy allows: one row per
# principal and request (``<principal>-<what>``), the administrator's (s3:*, kms:*) included.
DESTRUCTIVE: tuple[tuple[str, str, str, Context], ...] = (
    ("deletes-vault-version", "s3:DeleteObjectVersion", VAULT_COPY, NONE),
    ("shortens-vault-lock", "s3:PutObjectRetention", VAULT_COPY, SHORTEN_LOCK),
    ("bypasses-vault-governance", "s3:BypassGovernanceRetention", VAULT_COPY, NONE),
    ("changes-vault-lifecycle", "s3:PutLifecycleConfiguration", VAULT_BUCKET, NONE),
    ("changes-vault-policy", "s3:PutBucketPolicy", VAULT_BUCKET, NONE),
    ("deletes-vault-key", "kms:ScheduleKeyDeletion", VAULT_KEY, NONE),
)
PRIMARY_PRINCIPALS = (AGENT, AUDIT, WATCHDOG, RESTORE, DISPATCHER, REPLICATION, ADMIN)

# fmt: off
_NAMED_ROWS: tuple[Row, ...] = (
    # S3 replication, as the replication role: read the rule and the backup versions, decrypt them, write copies.
    Row("s3-assumes-replication-role", S3, "sts:AssumeRole", REPLICATION_ROLE, FROM_THIS_ACCOUNT, ALLOWED,
        "replication of this account's bucket"),
    Row("s3-foreign-assumes-replication-role", S3, "sts:AssumeRole", REPLICATION_ROLE, FROM_FOREIGN_ACCOUNT, DENIED,
        "confused deputy: another account's replication"),
    Row("lambda-assumes-replication-role", LAMBDA, "sts:AssumeRole", REPLICATION_ROLE, NONE, DENIED, "S3 only"),
    Row("replication-reads-rule", REPLICATION, "s3:GetReplicationConfiguration", BUCKET, NONE, ALLOWED, "its rule"),
    Row("replication-lists-bucket", REPLICATION, "s3:ListBucket", BUCKET, NONE, ALLOWED, "delete markers"),
    Row("replication-reads-backup-version", REPLICATION, "s3:GetObjectVersionForReplication", OWN_BACKUP, NONE,
        ALLOWED, "the version to copy"),
    Row("replication-reads-tags", REPLICATION, "s3:GetObjectVersionTagging", OWN_BACKUP, NONE, ALLOWED, "copies tags"),
    Row("replication-reads-lock", REPLICATION, "s3:GetObjectRetention", OWN_BACKUP, NONE, ALLOWED, "copies the lock"),
    Row("replication-reads-legal-hold", REPLICATION, "s3:GetObjectLegalHold", OWN_BACKUP, NONE, ALLOWED, "and holds"),
    Row("replication-decrypts-backup", REPLICATION, "kms:Decrypt", KEY, VIA_S3, ALLOWED, "SSE-KMS source"),
    Row("replication-replicates-copy", REPLICATION, "s3:ReplicateObject", VAULT_COPY, NONE, ALLOWED, "the copy"),
    Row("replication-replicates-manifest", REPLICATION, "s3:ReplicateObject", VAULT_MANIFEST, NONE, ALLOWED,
        "restores from the vault need it"),
    Row("replication-replicates-tags", REPLICATION, "s3:ReplicateTags", VAULT_COPY, NONE, ALLOWED, "tags: no keep"),
    Row("replication-owner-override", REPLICATION, "s3:ObjectOwnerOverrideToBucketOwner", VAULT_COPY, NONE, ALLOWED,
        "the vault's account owns copies"),
    Row("replication-checks-vault-versioning", REPLICATION, "s3:GetBucketVersioning", VAULT_BUCKET, NONE, ALLOWED,
        "destination must be versioned"),
    Row("replication-encrypts-copy", REPLICATION, "kms:Encrypt", VAULT_KEY, VIA_VAULT_S3, ALLOWED, "replica key"),
    Row("replication-data-key-for-copy", REPLICATION, "kms:GenerateDataKey", VAULT_KEY, VIA_VAULT_S3, ALLOWED,
        "bucket key of the vault"),
    Row("replication-decrypts-vault-bucket-key", REPLICATION, "kms:Decrypt", VAULT_KEY, VIA_VAULT_S3, ALLOWED,
        "S3 checks a bucket key with Decrypt"),
    # What replication may not do.
    Row("replication-reads-outside-agents", REPLICATION, "s3:GetObjectVersionForReplication", OUTSIDE_AGENTS, NONE,
        DENIED, "agents/ only"),
    Row("replication-reads-backup", REPLICATION, "s3:GetObject", OWN_BACKUP, NONE, DENIED, "only ForReplication"),
    Row("replication-writes-backup", REPLICATION, "s3:PutObject", OWN_BACKUP, NONE, DENIED, "reads the primary only"),
    Row("replication-deletes-backup", REPLICATION, "s3:DeleteObjectVersion", OWN_BACKUP, NONE, DENIED, "nor deletes"),
    Row("replication-kms-direct", REPLICATION, "kms:Decrypt", KEY, NONE, DENIED, "only through S3"),
    Row("replication-replicates-outside-agents", REPLICATION, "s3:ReplicateObject", VAULT_OUTSIDE_AGENTS, NONE,
        DENIED, "agents/ only"),
    Row("replication-replicates-delete", REPLICATION, "s3:ReplicateDelete", VAULT_COPY, NONE, DENIED,
        "no delete marker reaches the vault"),
    Row("replication-writes-vault", REPLICATION, "s3:PutObject", VAULT_COPY, NONE, DENIED, "replicas, not puts"),
    Row("replication-reads-vault-copy", REPLICATION, "s3:GetObject", VAULT_COPY, NONE, DENIED, "writes only"),
    Row("replication-vault-key-direct", REPLICATION, "kms:Encrypt", VAULT_KEY, VAULT_KEY_DIRECT, DENIED, "via S3"),
    Row("replication-vault-key-reencrypt", REPLICATION, "kms:ReEncryptFrom", VAULT_KEY, VIA_VAULT_S3, DENIED,
        "no ReEncrypt"),
    Row("replication-replicates-over-http", REPLICATION, "s3:ReplicateObject", VAULT_COPY, PLAIN_HTTP, DENIED,
        "TLS only"),
    # The watchdog verifies every copy; the restore coordinator reads and presigns copies for the agent.
    Row("watchdog-heads-vault-copy", WATCHDOG, "s3:GetObject", VAULT_COPY, NONE, ALLOWED, "HeadObject"),
    Row("watchdog-heads-vault-version", WATCHDOG, "s3:GetObjectVersion", VAULT_COPY, NONE, ALLOWED, "by version"),
    Row("watchdog-reads-vault-manifest", WATCHDOG, "s3:GetObject", VAULT_MANIFEST, NONE, ALLOWED, "names the run"),
    Row("watchdog-lists-vault", WATCHDOG, "s3:ListBucket", VAULT_BUCKET, NONE, ALLOWED, "not there yet: 404"),
    Row("watchdog-decrypts-vault-copy", WATCHDOG, "kms:Decrypt", VAULT_KEY, VIA_VAULT_S3, ALLOWED,
        "manifest, and the checksum of an SSE-KMS HEAD"),
    Row("restore-heads-vault-copy", RESTORE, "s3:GetObject", VAULT_COPY, NONE, ALLOWED, "checks the source"),
    Row("restore-presigns-vault-version", RESTORE, "s3:GetObjectVersion", VAULT_COPY, NONE, ALLOWED,
        "the agent downloads with the signer's rights"),
    Row("restore-reads-vault-manifest", RESTORE, "s3:GetObject", VAULT_MANIFEST, NONE, ALLOWED, "restore facts"),
    Row("restore-lists-vault", RESTORE, "s3:ListBucket", VAULT_BUCKET, NONE, ALLOWED, "not there yet: 404"),
    Row("restore-decrypts-vault-copy", RESTORE, "kms:Decrypt", VAULT_KEY, VIA_VAULT_S3, ALLOWED,
        "a presigned GET of an SSE-KMS object decrypts as the signer"),
    Row("watchdog-vault-key-direct", WATCHDOG, "kms:Decrypt", VAULT_KEY, VAULT_KEY_DIRECT, DENIED, "via S3 only"),
    Row("restore-vault-key-via-primary-s3", RESTORE, "kms:Decrypt", VAULT_KEY, VAULT_KEY_VIA_PRIMARY_S3, DENIED,
        "S3 of the vault's region only"),
    Row("restore-vault-data-key", RESTORE, "kms:GenerateDataKey", VAULT_KEY, VIA_VAULT_S3, DENIED, "reads only"),
    Row("watchdog-reads-vault-outside-agents", WATCHDOG, "s3:GetObject", VAULT_OUTSIDE_AGENTS, NONE, DENIED,
        "copies only"),
    Row("restore-writes-vault", RESTORE, "s3:PutObject", VAULT_COPY, NONE, DENIED, "reads only"),
    # Nobody else of the pipeline's account reads the vault: it trusts exactly these two roles.
    Row("audit-reads-vault-copy", AUDIT, "s3:GetObject", VAULT_COPY, NONE, DENIED, "not a reader of the vault"),
    Row("dispatcher-reads-vault-copy", DISPATCHER, "s3:GetObject", VAULT_COPY, NONE, DENIED, "not a reader"),
    Row("agent-reads-vault-copy", AGENT, "s3:GetObject", VAULT_COPY, NONE, DENIED, "write-only, and not there"),
    Row("agent-writes-vault", AGENT, "s3:PutObject", VAULT_COPY, NONE, DENIED, "hosts never reach the vault"),
    Row("admin-reads-vault-copy", ADMIN, "s3:GetObject", VAULT_COPY, NONE, DENIED,
        "its own s3:* does not reach another account's bucket"),
    Row("admin-decrypts-vault-copy", ADMIN, "kms:Decrypt", VAULT_KEY, VIA_VAULT_S3, DENIED, "nor its key"),
    Row("admin-replicates-into-vault", ADMIN, "s3:ReplicateObject", VAULT_COPY, NONE, DENIED,
        "only the replication role's ARN"),
    # Outsiders.
    Row("foreign-reads-vault-copy", FOREIGN, "s3:GetObject", VAULT_COPY, NONE, DENIED, "trusts one account"),
    Row("foreign-replicates-into-vault", FOREIGN, "s3:ReplicateObject", VAULT_COPY, NONE, DENIED, "by role ARN"),
    Row("foreign-decrypts-vault-copy", FOREIGN, "kms:Decrypt", VAULT_KEY, VIA_VAULT_S3, DENIED, "by role ARN"),
    Row("foreign-deletes-vault-version", FOREIGN, "s3:DeleteObjectVersion", VAULT_COPY, NONE, DENIED, "no grant"),
    Row("foreign-deletes-vault-key", FOREIGN, "kms:ScheduleKeyDeletion", VAULT_KEY, NONE, DENIED, "nobody"),
    # S3 server access logging of the vault.
    Row("s3-delivers-vault-access-log", S3_LOGGING, "s3:PutObject", VAULT_ACCESS_LOG, FROM_VAULT, ALLOWED,
        "the vault's logs"),
    Row("s3-foreign-vault-access-log", S3_LOGGING, "s3:PutObject", VAULT_ACCESS_LOG, FROM_FOREIGN_BUCKET, DENIED,
        "not the vault's"),
)
_DESTRUCTIVE_ROWS = tuple(
    Row(f"{principal}-{what}", principal, action, resource, context, DENIED,
        "nothing of the pipeline's account deletes, shortens or reconfigures the vault")
    for principal in PRIMARY_PRINCIPALS
    for what, action, resource, context in DESTRUCTIVE
)
OFFSITE_ROWS: tuple[Row, ...] = (*_NAMED_ROWS, *_DESTRUCTIVE_ROWS)

# A vault in the pipeline's own account (vault stack alone): the account's administrators are denied what
# destroys or shortens, by the Denies (each row flips without its statement); the deployer (CloudFormation's
# execution role of the vault's environment) may still update the vault's configuration.
SAME_ACCOUNT_VAULT_ROWS: tuple[Row, ...] = (
    Row("same-account-admin-deletes-vault-version", ADMIN, "s3:DeleteObjectVersion", VAULT_COPY, NONE, DENIED,
        "its s3:* stops at the vault", decided_by=DENY_DELETING),
    Row("same-account-admin-shortens-vault-lock", ADMIN, "s3:PutObjectRetention", VAULT_COPY, SHORTEN_LOCK, DENIED,
        "nor shortens a lock", decided_by=DENY_DELETING),
    Row("same-account-admin-overwrites-copy", ADMIN, "s3:PutObject", VAULT_COPY, NONE, DENIED,
        "an overwrite would make the copy noncurrent", decided_by=DENY_DELETING),
    Row("same-account-admin-changes-vault-lifecycle", ADMIN, "s3:PutLifecycleConfiguration", VAULT_BUCKET, NONE,
        DENIED, "keep stays retention_days", decided_by=DENY_RECONFIGURING),
    Row("same-account-admin-changes-vault-policy", ADMIN, "s3:PutBucketPolicy", VAULT_BUCKET, NONE, DENIED,
        "the Denies stay (the account root excepted: S3's rule)", decided_by=DENY_RECONFIGURING),
    Row("same-account-admin-deletes-vault-key", ADMIN, "kms:ScheduleKeyDeletion", VAULT_KEY, NONE, DENIED,
        "every copy would be lost", decided_by=DENY_KEY_DELETION),
    Row("same-account-admin-disables-vault-key", ADMIN, "kms:DisableKey", VAULT_KEY, NONE, DENIED,
        "copies unreadable", decided_by=DENY_KEY_DELETION),
    Row("same-account-admin-reads-vault-copy", ADMIN, "s3:GetObject", VAULT_COPY, NONE, ALLOWED,
        "within one account its own policy may read: a same-account vault is no confidentiality boundary"),
    Row("same-account-deployer-updates-vault-policy", DEPLOYER, "s3:PutBucketPolicy", VAULT_BUCKET, NONE, ALLOWED,
        "CloudFormation can still update the stack"),
    Row("same-account-deployer-updates-vault-lifecycle", DEPLOYER, "s3:PutLifecycleConfiguration", VAULT_BUCKET,
        NONE, ALLOWED, "CloudFormation can still update the stack"),
    Row("same-account-deployer-deletes-vault-version", DEPLOYER, "s3:DeleteObjectVersion", VAULT_COPY, NONE, DENIED,
        "CloudFormation needs no object rights", decided_by=DENY_DELETING),
    Row("same-account-deployer-deletes-vault-key", DEPLOYER, "kms:ScheduleKeyDeletion", VAULT_KEY, NONE, DENIED,
        "retained key, never deleted", decided_by=DENY_KEY_DELETION),
    Row("same-account-foreign-reads-vault-copy", FOREIGN, "s3:GetObject", VAULT_COPY, NONE, DENIED, "one account"),
)
# fmt: on
