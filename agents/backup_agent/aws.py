"""boto3 clients for the agent, created on demand (never at import time).

Every client uses standard-mode retries with a bounded number of attempts, so a transient S3 or
SQS failure is retried and a permanent one surfaces as an error. The endpoint is never configured
here: boto3 honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` from the environment.
boto3 itself is imported lazily so that ``backup-agent --help`` stays fast.

All clients of a process come from one boto3 session: each session loads its own copy of the
service models and credential chain (about 7 MiB of the agent's resident memory per session).
Sessions are not thread-safe, so creating a client is serialised; the clients themselves are.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from botocore.config import Config, _S3Dict

DEFAULT_MAX_ATTEMPTS = 5


def client_config(
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    pool: int = 10,
    read_timeout: float = 120.0,
    s3: dict[str, Any] | None = None,
) -> Config:
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=read_timeout,
        max_pool_connections=pool,
        tcp_keepalive=True,
        s3=cast("_S3Dict | None", s3),
    )


# Upload parts carry their own SHA-256 (x-amz-checksum-sha256, a signed header that S3 verifies
# against the body), so SigV4 need not hash every body a second time. Over HTTPS with a checksum
# botocore already sends UNSIGNED-PAYLOAD; this makes a plain-HTTP endpoint (a local S3 such as
# moto or MinIO) behave the same instead of costing one more pass over the stored bytes.
S3_UPLOAD_SETTINGS: dict[str, Any] = {"payload_signing_enabled": False}


_session_lock = threading.Lock()


@functools.cache
def _shared_session() -> Any:
    import boto3

    return boto3.session.Session()


def client(service: str, *, region: str | None = None, config: Config | None = None) -> Any:
    """A boto3 client for ``service`` (honours AWS_ENDPOINT_URL), from the process's one session."""
    with _session_lock:
        return _shared_session().client(service, region_name=region, config=config or client_config())
