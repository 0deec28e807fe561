"""What the functions need from AWS besides the ledger, as small ports with one boto3 adapter each.

Domain logic sees only the protocols; the handlers wire the adapters (clients injected, never created
at import time) and tests wire in-memory fakes (``tests/fakes.py``) or the adapters against moto.

- ``Notifier``: an alert to the on-call topic (SNS);
- ``EventPublisher``: a contract event on the pipeline's bus (EventBridge);
- ``JobQueue``: job messages to an agent's queue (SQS), one or a batch of up to ten;
- ``ObjectStore``: the backup objects (S3): HEAD, read, retention tags, Object Lock retention, manifest,
  presigned GET.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError

from backup_contracts.eventbus import put_events
from backup_contracts.events import Contract
from backup_contracts.naming import manifest_key
from backup_functions.alerts import Alert

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import ObjectLockRetentionTypeDef
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

log = logging.getLogger(__name__)

SQS_BATCH_MAX = 10
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 query-string signatures are valid at most 7 days
READ_CHUNK = 8 * 1024 * 1024
MANIFEST_MAX = 1024 * 1024
LockMode = Literal["GOVERNANCE", "COMPLIANCE"]
_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchVersion", "NotFound", "405", "MethodNotAllowed", "InvalidArgument"}


@dataclass(frozen=True)
class QueueMessage:
    """One job message: ``job_id`` also travels as a message attribute (the agent logs it)."""

    job_id: str
    body: str


@dataclass(frozen=True)
class Retention:
    """An object version's Object Lock retention: ``GOVERNANCE`` or ``COMPLIANCE`` until ``until``."""

    mode: LockMode
    until: datetime


class Notifier(Protocol):
    def notify(self, alert: Alert) -> str:
        """Publish the alert; returns the message id. Errors propagate (the caller retries)."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: Contract) -> None: ...


class JobQueue(Protocol):
    def send(self, queue_url: str, body: str) -> str: ...

    def send_batch(self, queue_url: str, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
        """Send up to ten messages in one call; returns those the queue did not accept."""
        ...


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str, version_id: str | None) -> dict[str, Any] | None:
        """HeadObject (with checksums) of exactly that version; None when it, or the key, does not exist."""
        ...

    def read(self, bucket: str, key: str, version_id: str | None) -> Iterator[bytes]:
        """The object's bytes, in chunks."""
        ...

    def set_tag(self, bucket: str, key: str, version_id: str | None, name: str, value: str) -> bool:
        """Set one tag (keeping the others); False when the object does not exist."""
        ...

    def retention(self, bucket: str, key: str, version_id: str | None) -> tuple[bool, Retention | None]:
        """(whether the version exists, its Object Lock retention or None when it has none)."""
        ...

    def set_retention(self, bucket: str, key: str, version_id: str | None, retention: Retention) -> bool:
        """PutObjectRetention (never with a governance bypass); False when the object does not exist."""
        ...

    def manifest(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The backup's sidecar manifest (JSON), or None when absent or unreadable."""
        ...

    def presign_get(self, bucket: str, key: str, version_id: str | None, expires_s: int) -> str: ...


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code in _NOT_FOUND_CODES or status in ("404", "405")


def _location(bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
    location: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        location["VersionId"] = version_id
    return location


class SnsNotifier:
    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def notify(self, alert: Alert) -> str:
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=alert.subject,
            Message=alert.sns_body(),
            MessageAttributes=alert.message_attributes(),  # type: ignore[arg-type]
        )
        return str(response["MessageId"])


class EventBridgePublisher:
    def __init__(self, events: EventBridgeClient, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, event: Contract) -> None:
        put_events(self._events, [event], self._bus)


class SqsJobQueue:
    def __init__(self, sqs: SQSClient) -> None:
        self._sqs = sqs

    def send(self, queue_url: str, body: str) -> str:
        return str(self._sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"])

    def send_batch(self, queue_url: str, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
        if len(messages) > SQS_BATCH_MAX:
            raise ValueError(f"SendMessageBatch takes at most {SQS_BATCH_MAX} messages, not {len(messages)}")
        entries = [
            {
                "Id": str(index),
                "MessageBody": message.body,
                "MessageAttributes": {"job_id": {"DataType": "String", "StringValue": message.job_id}},
            }
            for index, message in enumerate(messages)
        ]
        response = self._sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
        failed = []
        for entry in response.get("Failed", []):
            message = messages[int(entry["Id"])]
            log.warning(
                "job %s not accepted by %s: %s %s", message.job_id, queue_url, entry.get("Code"), entry.get("Message")
            )
            failed.append(message)
        return failed


class S3ObjectStore:
    """The backup objects, with the calling function's role (the audit tags, the coordinator presigns).

    ``s3`` should be a SigV4 client (``Config(signature_version="s3v4")``): SSE-KMS objects can only be
    read with SigV4 signatures, also through presigned URLs.
    """

    def __init__(self, s3: S3Client) -> None:
        self._s3 = s3

    def head(self, bucket: str, key: str, version_id: str | None) -> dict[str, Any] | None:
        try:
            response: dict[str, Any] = dict(
                self._s3.head_object(**_location(bucket, key, version_id), ChecksumMode="ENABLED")
            )
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return None if response.get("DeleteMarker") else response

    def read(self, bucket: str, key: str, version_id: str | None) -> Iterator[bytes]:
        body = self._s3.get_object(**_location(bucket, key, version_id))["Body"]
        try:
            yield from iter(lambda: body.read(READ_CHUNK), b"")
        finally:
            body.close()

    def set_tag(self, bucket: str, key: str, version_id: str | None, name: str, value: str) -> bool:
        location = _location(bucket, key, version_id)
        try:
            current = self._s3.get_object_tagging(**location).get("TagSet", [])
            tags = [tag for tag in current if tag["Key"] != name] + [{"Key": name, "Value": value}]
            self._s3.put_object_tagging(**location, Tagging={"TagSet": tags})
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def retention(self, bucket: str, key: str, version_id: str | None) -> tuple[bool, Retention | None]:
        # HeadObject carries the retention (to a caller allowed s3:GetObjectRetention) and says whether the
        # version exists; GetObjectRetention errors on an object without one (and moto lacks it).
        head = self.head(bucket, key, version_id)
        if head is None:
            return False, None
        if not head.get("ObjectLockMode") or not head.get("ObjectLockRetainUntilDate"):
            return True, None
        mode: LockMode = "COMPLIANCE" if head["ObjectLockMode"] == "COMPLIANCE" else "GOVERNANCE"
        return True, Retention(mode, head["ObjectLockRetainUntilDate"].astimezone(UTC))

    def set_retention(self, bucket: str, key: str, version_id: str | None, retention: Retention) -> bool:
        lock: ObjectLockRetentionTypeDef = {"Mode": retention.mode, "RetainUntilDate": retention.until}
        try:
            self._s3.put_object_retention(**_location(bucket, key, version_id), Retention=lock)
        except ClientError as exc:
            # only a missing key or version; InvalidArgument here means a date S3 refuses, not "not found"
            if str(exc.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "NoSuchVersion", "404"):
                return False
            raise
        return True

    def manifest(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            body = self._s3.get_object(Bucket=bucket, Key=manifest_key(key))["Body"].read(MANIFEST_MAX)
            manifest = json.loads(body)
        except (ClientError, ValueError) as exc:
            log.warning("manifest of %s not readable: %s", key, exc)
            return None
        return manifest if isinstance(manifest, dict) else None

    def presign_get(self, bucket: str, key: str, version_id: str | None, expires_s: int) -> str:
        expires = max(60, min(int(expires_s), MAX_PRESIGN_SECONDS))
        return str(
            self._s3.generate_presigned_url("get_object", Params=_location(bucket, key, version_id), ExpiresIn=expires)
        )
