"""What the functions need from AWS besides the ledger, as small ports with one boto3 adapter each.

Domain logic sees only the protocols; the handlers wire the adapters (clients injected, never created
at import time) and tests wire in-memory fakes (``tests/fakes.py``) or the adapters against moto.

- ``Notifier``: an alert to the on-call topic (SNS);
- ``SnsSubscriptions``: the topic's subscriptions still pending confirmation (the canary's warning);
- ``EventPublisher``: a contract event on the pipeline's bus (EventBridge);
- ``JobQueue``: job messages to an agent's queue (SQS), one or a batch of up to ten;
- ``ObjectStore``: the backup objects (S3): HEAD, read, retention tags, Object Lock retention, manifest,
  presigned GET;
- ``Courier``: performs an outbox entry (``ledger/outbox.py``) through the ports above: the stored alert,
  event or job as it was owed, each with its entry's id as a deduplication attribute where the transport
  has one (SNS and SQS message attributes; EventBridge has none).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError

from backup_contracts.eventbus import put_events
from backup_contracts.events import DETAIL_TYPE_OF, Contract, parse_event
from backup_contracts.naming import manifest_key
from backup_functions.alerts import Alert
from backup_functions.canary import pending_of
from backup_functions.chat_format import chat_notification
from backup_functions.ledger.outbox import Owed

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
    def notify(self, alert: Alert, *, dedup_id: str | None = None) -> str:
        """Publish the alert; returns the message id. Errors propagate (the caller retries)."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: Contract) -> None: ...


class JobQueue(Protocol):
    def send(self, queue_url: str, body: str, *, dedup_id: str | None = None) -> str: ...

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
    """Publishes alerts to the alert topic and, when the fleet has chat channels, to the chat topic as a
    Chatbot custom notification (``chat_format``). The chat copy goes first: if it fails nothing was sent
    and the retry sends both; if the alert topic then fails, the retry repeats only a chat message."""

    def __init__(self, sns: SNSClient, topic_arn: str, chat_topic_arn: str | None = None) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._chat_topic_arn = chat_topic_arn or None

    def notify(self, alert: Alert, *, dedup_id: str | None = None) -> str:
        attributes = alert.message_attributes()
        if dedup_id:  # standard topics take no MessageDeduplicationId; subscribers may dedupe on this
            attributes["dedup_id"] = {"DataType": "String", "StringValue": dedup_id}
        if self._chat_topic_arn:
            self._sns.publish(
                TopicArn=self._chat_topic_arn,
                Message=chat_notification(alert, dedup_id=dedup_id),
                MessageAttributes=attributes,  # type: ignore[arg-type]
            )
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Subject=alert.subject,
            Message=alert.sns_body(),
            MessageAttributes=attributes,  # type: ignore[arg-type]
        )
        return str(response["MessageId"])


class SnsSubscriptions:
    """``ListSubscriptionsByTopic`` (paginated): pending confirmations per protocol, never the endpoints."""

    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def pending_confirmation(self) -> dict[str, int]:
        pairs = [
            (str(subscription.get("Protocol", "")), str(subscription.get("SubscriptionArn", "")))
            for page in self._sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=self._topic_arn)
            for subscription in page.get("Subscriptions", [])
        ]
        return pending_of(pairs)


class EventBridgePublisher:
    def __init__(self, events: EventBridgeClient, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, event: Contract) -> None:
        put_events(self._events, [event], self._bus)


class SqsJobQueue:
    def __init__(self, sqs: SQSClient) -> None:
        self._sqs = sqs

    def send(self, queue_url: str, body: str, *, dedup_id: str | None = None) -> str:
        if not dedup_id:
            return str(self._sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"])
        # MessageDeduplicationId is for FIFO queues only: standard queues carry the id as an attribute
        attributes = {"dedup_id": {"DataType": "String", "StringValue": dedup_id}}
        response = self._sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=body,
            MessageAttributes=attributes,  # type: ignore[arg-type]
        )
        return str(response["MessageId"])

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
        except ClientError as exc:
            if not _missing(exc) and str(exc.response.get("Error", {}).get("Code", "")) != "AccessDenied":
                raise  # a failed read is not an absent manifest: the caller's retry reads it
            log.warning("manifest of %s not readable: %s", key, exc)
            return None
        except ValueError as exc:
            log.warning("manifest of %s not readable: %s", key, exc)
            return None
        return manifest if isinstance(manifest, dict) else None

    def presign_get(self, bucket: str, key: str, version_id: str | None, expires_s: int) -> str:
        expires = max(60, min(int(expires_s), MAX_PRESIGN_SECONDS))
        return str(
            self._s3.generate_presigned_url("get_object", Params=_location(bucket, key, version_id), ExpiresIn=expires)
        )


# --------------------------------------------------------------------------- the outbox's deliveries


def alert_entry(alert: Alert, *, id: str, at: datetime, by: Literal["handler", "tick"] = "handler") -> Owed:
    """An alert owed, as it will be sent."""
    payload = {
        "kind": alert.kind,
        "phase": alert.phase,
        "subject": alert.subject,
        "body": alert.body,
        "facts": alert.facts,
    }
    return Owed(id=id, kind="alert", owed_at=at, by=by, payload=json.loads(json.dumps(payload, default=str)))


def event_entry(event: Contract, *, id: str, at: datetime, by: Literal["handler", "tick"] = "handler") -> Owed:
    """A contract event owed, as it will be put on the bus."""
    source, detail_type = DETAIL_TYPE_OF[type(event)]
    payload = {"source": source, "detail_type": detail_type, "detail": json.loads(event.model_dump_json())}
    return Owed(id=id, kind="event", owed_at=at, by=by, payload=payload)


class Courier:
    """Performs outbox entries: ``alert`` (SNS), ``event`` (EventBridge), ``job`` (SQS; a restore job's
    presigned URL is signed at each send, never stored) and the kinds in ``actions`` (ledger writes the
    owner performs itself, e.g. a drill's outcome on its source target)."""

    def __init__(
        self,
        *,
        notifier: Notifier | None = None,
        events: EventPublisher | None = None,
        jobs: JobQueue | None = None,
        objects: ObjectStore | None = None,
        now: Any = None,
        actions: dict[str, Any] | None = None,
    ) -> None:
        self._notifier = notifier
        self._events = events
        self._jobs = jobs
        self._objects = objects
        self._now = now
        self.actions: dict[str, Any] = dict(actions or {})

    def deliver(self, entry: Owed) -> None:
        payload = entry.payload
        if entry.kind == "alert" and self._notifier is not None:
            alert = Alert(payload["kind"], payload["phase"], payload["subject"], payload["body"], payload["facts"])
            self._notifier.notify(alert, dedup_id=entry.id)
        elif entry.kind == "event" and self._events is not None:
            self._events.publish(parse_event(payload["source"], payload["detail_type"], payload["detail"]))
        elif entry.kind == "job" and self._jobs is not None:
            self._jobs.send(payload["queue_url"], self._job_body(payload), dedup_id=entry.id)
        elif entry.kind in self.actions:
            self.actions[entry.kind](entry)
        else:
            raise ValueError(f"no way to deliver an owed {entry.kind!r} here")

    def settle(
        self, owed: Mapping[str, Owed], clear: Callable[[str, Owed, bool], object], *, only: Iterable[str] | None = None
    ) -> None:
        """Deliver the entries of ``owed`` (those named in ``only``, when given), in name order, clearing
        each after its delivery (``clear(name, entry, last)``; ``last``: nothing else is owed after it)."""
        remaining = set(owed)
        for name in sorted(set(only) & remaining if only is not None else remaining):
            entry = owed[name]
            self.deliver(entry)
            remaining.discard(name)
            clear(name, entry, not remaining)

    def _job_body(self, payload: dict[str, Any]) -> str:
        presign = payload.get("presign")
        if not presign or self._objects is None:
            return str(payload["body"])
        now = self._now() if self._now is not None else datetime.now(UTC)
        deadline = datetime.fromisoformat(str(presign["valid_until"]).replace("Z", "+00:00"))
        expires = int(max((deadline - now).total_seconds(), 60))
        url = self._objects.presign_get(presign["bucket"], presign["key"], presign.get("version_id"), expires)
        body = json.loads(payload["body"])
        body["source"]["presigned_url"] = url
        index = presign.get("wal_index")  # a point-in-time restore's WAL index (restore/wal_index.py)
        if index and body["source"].get("wal") is not None:
            body["source"]["wal"]["index_url"] = self._objects.presign_get(index["bucket"], index["key"], None, expires)
        return json.dumps(body, separators=(",", ":"))
