"""What the restore coordinator needs from AWS, as small ports with boto3 adapters.

The domain logic (``logic.py``) only sees these protocols; tests use the adapters against moto or
in-memory fakes. Clients are injected, never created at import time.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from botocore.exceptions import ClientError

from backup_contracts.eventbus import put_events
from backup_contracts.events import Contract
from backup_contracts.naming import manifest_key
from backup_functions.alerts import Alert, publish

log = logging.getLogger(__name__)

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 query-string signatures are valid at most 7 days


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str, version_id: str | None) -> dict[str, Any] | None:
        """HeadObject of exactly that version; None when it (or the key) does not exist."""
        ...

    def manifest(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The backup's sidecar manifest (JSON) or None when absent/unreadable."""
        ...

    def presign_get(self, bucket: str, key: str, version_id: str | None, expires_s: int) -> str: ...


class JobQueue(Protocol):
    def send(self, queue_url: str, body: str) -> str: ...


class EventPublisher(Protocol):
    def publish(self, event: Contract) -> None: ...


class Notifier(Protocol):
    def notify(self, alert: Alert) -> str: ...


_MISSING_CODES = {"404", "NoSuchKey", "NoSuchVersion", "NotFound", "405", "MethodNotAllowed", "InvalidArgument"}


class S3ObjectStore:
    """HeadObject / GetObject (manifest) / presigned GET, with the coordinator's role (it holds kms:Decrypt).

    ``s3`` should be a SigV4 client (``Config(signature_version="s3v4")``): SSE-KMS objects can only
    be read with SigV4 signatures.
    """

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def head(self, bucket: str, key: str, version_id: str | None) -> dict[str, Any] | None:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id:
            params["VersionId"] = version_id
        try:
            response: dict[str, Any] = self._s3.head_object(**params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if code in _MISSING_CODES or status in ("404", "405"):
                return None
            raise
        if response.get("DeleteMarker"):
            return None
        return response

    def manifest(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            body = self._s3.get_object(Bucket=bucket, Key=manifest_key(key))["Body"].read(1024 * 1024)
            manifest = json.loads(body)
        except (ClientError, ValueError) as exc:
            log.warning("manifest of %s not readable: %s", key, exc)
            return None
        return manifest if isinstance(manifest, dict) else None

    def presign_get(self, bucket: str, key: str, version_id: str | None, expires_s: int) -> str:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        expires = max(60, min(int(expires_s), MAX_PRESIGN_SECONDS))
        return str(self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires))


class SqsJobQueue:
    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def send(self, queue_url: str, body: str) -> str:
        return str(self._sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"])


class EventBridgePublisher:
    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, event: Contract) -> None:
        put_events(self._events, [event], self._bus)


class SnsNotifier:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic = topic_arn

    def notify(self, alert: Alert) -> str:
        return publish(self._sns, self._topic, alert)
