"""Principal symbols of the off-site vault's rows (``offsite_rows.py``), bound in ``matrix.AccessMatrix``."""

from __future__ import annotations

REPLICATION = "replication"  # the pipeline's S3 replication role (<pipeline>-replication), as S3 assumes it
ADMIN = "admin"  # a role of the pipeline's account whose own policy allows s3:* and kms:*
DEPLOYER = "deployer"  # the vault environment's CDK CloudFormation execution role (AdministratorAccess)
