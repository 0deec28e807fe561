"""The names each side of the off-site vault uses for the other, derived from the fleet alone.

The vault stack (``stacks/vault.py``) and the pipeline stack live in different regions and usually in
different accounts, so neither can reference the other's resources: each derives the other's names from
``pipeline.offsite`` and the fixed names of ``backup_contracts.naming``. The vault trusts the primary's
roles by ARN (``aws:PrincipalArn``), which works before those roles exist, so the vault deploys first.

The two functions that read the vault — the watchdog (it verifies every copy) and the restore coordinator
(it reads and presigns copies) — get fixed role names for that when ``pipeline.offsite`` is set: the vault
names exactly these two roles, rather than trusting whatever the primary account's administrators grant.
ARNs use the ``aws`` partition: the off-site vault is built for the commercial regions.
"""

from __future__ import annotations

from dataclasses import dataclass

from backup_contracts.fleet import Fleet
from backup_contracts.naming import (
    AGENT_PREFIX_ROOT,
    replication_role_name,
    vault_bucket_name,
    vault_key_alias,
)

PARTITION = "aws"
VAULT_READERS = ("watchdog", "restore")  # the functions that read copies back from the vault


def function_role_name(pipeline: str, function: str) -> str:
    """The fixed role name of a function that reads the vault (at most 40 + 1 + 8 + 9 = 58 characters)."""
    return f"{pipeline}-{function}-function"


def role_arn(account: str, name: str) -> str:
    return f"arn:{PARTITION}:iam::{account}:role/{name}"


def reader_role_names(fleet: Fleet) -> dict[str, str]:
    """The functions whose roles get fixed names: the vault readers when there is a vault, else none."""
    if fleet.pipeline.offsite is None:
        return {}
    return {function: function_role_name(fleet.pipeline.name, function) for function in VAULT_READERS}


@dataclass(frozen=True)
class VaultNames:
    """Everything one side names of the other."""

    pipeline: str
    region: str  # the vault's
    account: str  # the vault's
    primary_account: str  # where the pipeline stack, its roles and the backup bucket live

    @classmethod
    def of(cls, fleet: Fleet) -> VaultNames:
        offsite = fleet.pipeline.offsite
        if offsite is None:
            raise ValueError("the fleet declares no pipeline.offsite")
        return cls(fleet.pipeline.name, offsite.region, offsite.account, offsite.primary_account)

    @property
    def same_account(self) -> bool:
        """The vault lives in the primary's account: it survives the region, not the account's administrators."""
        return self.account == self.primary_account

    @property
    def bucket(self) -> str:
        return vault_bucket_name(self.pipeline, self.account)

    @property
    def bucket_arn(self) -> str:
        return f"arn:{PARTITION}:s3:::{self.bucket}"

    @property
    def copies_arn(self) -> str:
        """Every copy (backups and manifests): replication copies only what is under ``agents/``."""
        return f"{self.bucket_arn}/{AGENT_PREFIX_ROOT}/*"

    @property
    def key_alias(self) -> str:
        return vault_key_alias(self.pipeline)

    @property
    def key_alias_arn(self) -> str:
        """The replica key as the replication rule names it (S3 accepts a key ARN or an alias ARN)."""
        return f"arn:{PARTITION}:kms:{self.region}:{self.account}:{self.key_alias}"

    @property
    def keys_arn(self) -> str:
        """The vault account's keys in its region; identity policies narrow it to the alias
        (``kms:ResourceAliases``): the key's id is not known until the vault stack exists."""
        return f"arn:{PARTITION}:kms:{self.region}:{self.account}:key/*"

    @property
    def s3_service(self) -> str:
        """``kms:ViaService`` of S3 in the vault's region: the vault key is used only through it."""
        return f"s3.{self.region}.amazonaws.com"

    @property
    def primary_root(self) -> str:
        return f"arn:{PARTITION}:iam::{self.primary_account}:root"

    @property
    def replication_role_arn(self) -> str:
        return role_arn(self.primary_account, replication_role_name(self.pipeline))

    @property
    def reader_role_arns(self) -> list[str]:
        return [role_arn(self.primary_account, function_role_name(self.pipeline, f)) for f in VAULT_READERS]

    @property
    def deployer_role_pattern(self) -> str:
        """The CDK bootstrap's CloudFormation execution role of the vault's environment (any qualifier)."""
        return role_arn(self.account, f"cdk-*-cfn-exec-role-{self.account}-{self.region}")
