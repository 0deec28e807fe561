"""The backup-pipeline host agent: long-polls its job queue and streams dumps into KMS-encrypted S3."""

__version__ = "0.1.0"
