"""Turn a recorded AWS API call into the IAM requests AWS authorises it as — rows for the access matrix.

``test_calls_within_rights.py`` records every call the local pipeline's functions and agent make and
hands them here. Each call becomes one or more ``Row``s expected ``Allowed``: the API operation's IAM
action (``HeadObject`` is ``s3:GetObject``, ``UploadPart`` is ``s3:PutObject``, a batch is its single
action), the resource it names (the local name swapped for the synthesized stack's ARN), the request
context the call carries (SSE headers, ``If-None-Match``, object-lock mode, the events' sources), and the
KMS requests the service makes on the caller's behalf (SSE-KMS objects, encrypted queues, topic and
ledger). A call on the off-site vault's bucket maps to the vault stack's ARNs and key, in its region. An
operation this module does not know fails the test: a new call must be mapped, not skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .rows import (
    ALLOWED,
    CREATES,
    IF_NONE_MATCH,
    SSE,
    SSE_KEY,
    THROUGH_IAM_URL,
    VIA_DYNAMODB,
    VIA_S3,
    VIA_SNS,
    VIA_SQS,
    VIA_URL,
    Context,
    Row,
)

# Calls IAM does not authorise (anyone may ask who they are).
NEEDS_NO_PERMISSION = frozenset({("sts", "GetCallerIdentity")})
S3_TAG_HEADER = "s3:RequestObjectTag/"
LOCK_MODE, LOCK_UNTIL = "s3:object-lock-mode", "s3:object-lock-retain-until-date"


@dataclass(frozen=True)
class Call:
    """One API call as botocore made it: who (a principal symbol of ``rows``), service, operation, params."""

    caller: str
    service: str
    operation: str
    params: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.caller}: {self.service}.{self.operation}"


@dataclass(frozen=True)
class VaultLocalNames:
    """The off-site vault as the local pipeline names it → the vault stack's ARNs (another region)."""

    bucket: tuple[str, str]  # (local bucket name, bucket ARN)
    key: tuple[str, str]  # (local key ARN, key ARN)
    via_s3: Context  # what KMS sees when S3 of the vault's region uses the vault key (with its alias)


@dataclass(frozen=True)
class LocalNames:
    """What the local pipeline calls a resource → its ARN in the synthesized stack."""

    bucket: tuple[str, str]  # (local bucket name, bucket ARN)
    table: tuple[str, str]  # (local table name, table ARN)
    key: tuple[str, str]  # (local key ARN, key ARN)
    topic: tuple[str, str]
    bus: tuple[str, str]
    queues: Mapping[str, str]  # local queue name -> queue ARN
    functions: Mapping[str, str]  # function (dispatcher, audit, watchdog, restore) -> function ARN
    unmapped: list[str] = field(default_factory=list)
    vault: VaultLocalNames | None = None  # pipeline.offsite

    def store(self, params: Mapping[str, Any]) -> tuple[str, str, Context]:
        """(bucket ARN, ARN of its key, the KMS context of S3 using that key) of the bucket a call names."""
        local = params["Bucket"]
        if self.vault is not None and local in self.vault.bucket:
            return self.vault.bucket[1], self.vault.key[1], self.vault.via_s3
        return self.bucket_arn(params), self.key[1], VIA_S3

    def _one(self, pair: tuple[str, str], local: str, what: str) -> str:
        if local not in (pair[0], pair[1]):
            raise UnmappedCallError(f"{what} {local!r} is not the pipeline's ({pair[0]!r})")
        return pair[1]

    def bucket_arn(self, params: Mapping[str, Any]) -> str:
        return self._one(self.bucket, params["Bucket"], "bucket")

    def object_arn(self, params: Mapping[str, Any]) -> str:
        return f"{self.bucket_arn(params)}/{params['Key']}"

    def table_arn(self, name: str) -> str:
        return self._one(self.table, name, "table")

    def queue_arn(self, url_or_arn: str) -> str:
        name = url_or_arn.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        if name not in self.queues:
            raise UnmappedCallError(f"queue {name!r} is none of the stack's {sorted(self.queues)}")
        return self.queues[name]

    def key_arn(self, local: str) -> str:
        return self._one(self.key, local, "KMS key")


class UnmappedCallError(ValueError):
    """A recorded call this module cannot turn into IAM requests: map it (and say why) before it can pass."""


Request = tuple[str, str, Context]  # action, resource ARN, context


def _s3(call: Call, names: LocalNames) -> Iterator[Request]:
    p, op = call.params, call.operation
    versioned = "VersionId" in p
    bucket, key, via_s3 = names.store(p)
    if op in ("ListObjectsV2", "ListObjects"):
        yield "s3:ListBucket", bucket, {}
        return
    if op == "ListObjectVersions":
        yield "s3:ListBucketVersions", bucket, {}
        return
    obj = f"{bucket}/{p['Key']}"
    if op in ("HeadObject", "GetObject"):
        yield ("s3:GetObjectVersion" if versioned else "s3:GetObject"), obj, {}
        # GetObject of an SSE-KMS object decrypts its data key; so does HeadObject with ChecksumMode, whose
        # checksum of an SSE-KMS object S3 returns only to a caller allowed kms:Decrypt
        if op == "GetObject" or p.get("ChecksumMode") == "ENABLED":
            yield "kms:Decrypt", key, via_s3
        return
    if op in ("GetObjectTagging", "PutObjectTagging"):
        verb = op.removesuffix("ObjectTagging")
        yield (f"s3:{verb}ObjectVersionTagging" if versioned else f"s3:{verb}ObjectTagging"), obj, _tags(p)
        return
    if op in ("PutObjectRetention", "GetObjectRetention"):
        context: dict[str, str] = {}
        if "Retention" in p:
            context = {LOCK_MODE: p["Retention"]["Mode"], LOCK_UNTIL: str(p["Retention"]["RetainUntilDate"])}
        yield f"s3:{op}", obj, context
        return
    if op == "AbortMultipartUpload":
        yield "s3:AbortMultipartUpload", obj, {}
        return
    if op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        context = {CREATES: "true" if op in ("PutObject", "CompleteMultipartUpload") else "false"}
        if "ServerSideEncryption" in p:
            context[SSE] = p["ServerSideEncryption"]
        if "SSEKMSKeyId" in p:
            context[SSE_KEY] = names.key_arn(p["SSEKMSKeyId"])
        if "IfNoneMatch" in p:
            context[IF_NONE_MATCH] = p["IfNoneMatch"]
        yield "s3:PutObject", obj, context | _tags(p)
        kms = "kms:GenerateDataKey" if op in ("PutObject", "CreateMultipartUpload") else "kms:Decrypt"
        yield kms, key, via_s3
        return
    raise UnmappedCallError(f"{call.label}: no IAM mapping for this S3 operation")


def _tags(params: Mapping[str, Any]) -> dict[str, str]:
    """The ``s3:RequestObjectTag/<key>`` context of a call that sets tags (header or TagSet)."""
    tags: dict[str, str] = {}
    header = params.get("Tagging")
    if isinstance(header, str):
        for pair in filter(None, header.split("&")):
            key, _, value = pair.partition("=")
            tags[key] = value
    elif isinstance(header, Mapping):
        tags = {tag["Key"]: tag["Value"] for tag in header.get("TagSet", [])}
    return {f"{S3_TAG_HEADER}{key}": value for key, value in tags.items()}


_SQS_BATCHES = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


_SQS_ACTIONS = frozenset(
    {"SendMessage", "ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes"}
)


def _sqs(call: Call, names: LocalNames) -> Iterator[Request]:
    action = _SQS_BATCHES.get(call.operation, call.operation)
    if action not in _SQS_ACTIONS:
        raise UnmappedCallError(f"{call.label}: no IAM mapping for this SQS operation")
    yield f"sqs:{action}", names.queue_arn(call.params["QueueUrl"]), {}
    if action == "SendMessage":
        yield "kms:GenerateDataKey", names.key[1], VIA_SQS
    if action in ("SendMessage", "ReceiveMessage"):
        yield "kms:Decrypt", names.key[1], VIA_SQS


_DYNAMODB = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "BatchGetItem", "BatchWriteItem", "Scan"}
)
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def _dynamodb(call: Call, names: LocalNames) -> Iterator[Request]:
    p, op = call.params, call.operation
    if op in ("BatchGetItem", "BatchWriteItem"):
        tables = list(p["RequestItems"])
        requests = [(f"dynamodb:{op}", names.table_arn(table)) for table in tables]
    elif op in ("TransactWriteItems", "TransactGetItems"):
        requests = [
            (f"dynamodb:{_TRANSACT.get(kind, 'GetItem')}", names.table_arn(item[kind]["TableName"]))
            for item in p["TransactItems"]
            for kind in item
        ]
    elif op in _DYNAMODB:
        resource = names.table_arn(p["TableName"])
        if "IndexName" in p:
            resource = f"{resource}/index/{p['IndexName']}"
        requests = [(f"dynamodb:{op}", resource)]
    else:
        raise UnmappedCallError(f"{call.label}: no IAM mapping for this DynamoDB operation")
    for action, resource in requests:
        yield action, resource, {}
    yield "kms:Decrypt", names.key[1], VIA_DYNAMODB


def _sns(call: Call, names: LocalNames) -> Iterator[Request]:
    if call.operation != "Publish":
        raise UnmappedCallError(f"{call.label}: no IAM mapping for this SNS operation")
    yield "sns:Publish", names._one(names.topic, call.params["TopicArn"], "topic"), {}
    yield "kms:GenerateDataKey", names.key[1], VIA_SNS
    yield "kms:Decrypt", names.key[1], VIA_SNS


def _events(call: Call, names: LocalNames) -> Iterator[Request]:
    if call.operation != "PutEvents":
        raise UnmappedCallError(f"{call.label}: no IAM mapping for this EventBridge operation")
    entries = call.params["Entries"]
    buses = {entry.get("EventBusName", "default") for entry in entries}
    sources = tuple(sorted({entry["Source"] for entry in entries if "Source" in entry}))
    for bus in buses:
        yield "events:PutEvents", names._one(names.bus, bus, "event bus"), {"events:source": sources}


def _lambda(call: Call, names: LocalNames) -> Iterator[Request]:
    """A person's call of the approvals URL: InvokeFunctionUrl of an AWS_IAM URL, and the InvokeFunction
    via that URL it also needs (rows ``approver-calls-approvals-url`` and its neighbour)."""
    if call.operation != "InvokeFunctionUrl":
        raise UnmappedCallError(f"{call.label}: no IAM mapping for this Lambda operation")
    function = names.functions[call.params["FunctionName"]]
    yield "lambda:InvokeFunctionUrl", function, THROUGH_IAM_URL
    yield "lambda:InvokeFunction", function, VIA_URL


SERVICES: Mapping[str, Callable[[Call, LocalNames], Iterator[Request]]] = {
    "s3": _s3,
    "sqs": _sqs,
    "dynamodb": _dynamodb,
    "sns": _sns,
    "events": _events,
    "lambda": _lambda,
}


def rows_of(calls: list[Call], names: LocalNames) -> tuple[list[Row], dict[str, list[Call]]]:
    """The distinct requests of ``calls`` as rows expected Allowed, and the calls behind each row."""
    rows: dict[tuple[str, str, str, tuple[tuple[str, Any], ...]], Row] = {}
    behind: dict[str, list[Call]] = {}
    for call in calls:
        if (call.service, call.operation) in NEEDS_NO_PERMISSION:
            continue
        if call.service not in SERVICES:
            raise UnmappedCallError(f"{call.label}: no IAM mapping for the {call.service} service")
        for action, resource, context in SERVICES[call.service](call, names):
            identity = (call.caller, action, resource, tuple(sorted(context.items())))
            if identity not in rows:
                name = f"{call.caller}-{action}-{len(rows)}"
                rows[identity] = Row(name, call.caller, action, resource, context, ALLOWED, call.label)
            behind.setdefault(rows[identity].name, []).append(call)
    return list(rows.values()), behind
