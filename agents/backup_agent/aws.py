"""boto3 clients for the agent, created on demand (never at import time).

Every client uses standard-mode retries with a bounded number of attempts, so a transient S3 or
SQS failure is retried and a permanent one surfaces as an error. The endpoint is never configured
here: boto3 honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` from the environment.
boto3 itself is imported lazily so that ``backup-agent --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

DEFAULT_MAX_ATTEMPTS = 5


def client_config(*, max_attempts: int = DEFAULT_MAX_ATTEMPTS, pool: int = 10, read_timeout: float = 120.0) -> Config:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=read_timeout,
        max_pool_connections=pool,
        tcp_keepalive=True,
    )


def client(service: str, *, region: str | None = None, config: Config | None = None) -> Any:
    """A boto3 client for ``service`` (honours AWS_ENDPOINT_URL)."""
    import boto3

    session: Any = boto3.session.Session()
    return session.client(service, region_name=region, config=config or client_config())
