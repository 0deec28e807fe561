"""The specification: who may do what to which resource, with which request context — one row per line.

A row names a principal (an agent, a function, a service or an outsider), an IAM action, a resource, the
context keys the real request carries, the decision IAM must reach and why. ``{placeholders}`` stand for
the synthesized stack's concrete ARNs (see ``matrix.Bindings``). A row whose ``gap`` is set (on its
continuation line, one of the constants below) fails today because of a known policy bug: the test marks
it ``xfail(strict=True)`` with that reason, so fixing the policy turns it into an unexpected pass that
tells the fixer to delete the ``gap``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from backup_contracts.naming import SOURCE_AGENT, SOURCE_PIPELINE, SOURCE_REQUESTS, retention_tag_value
from stacks.agent_access import AGENT_TRUST_TAG

from .template import ACCOUNT, REGION

ContextValue = str | tuple[str, ...]
Context = Mapping[str, ContextValue]


class Decision(StrEnum):
    ALLOWED = "Allowed"
    DENIED = "Denied"  # explicitly (a Deny statement) or implicitly (no Allow): either keeps the request out


@dataclass(frozen=True)
class Row:
    name: str
    principal: str
    action: str
    resource: str
    context: Context
    expected: Decision
    why: str
    gap: str | None = None
    decided_by: str | None = None  # the Sid that must decide the row: without it, the decision flips


ALLOWED, DENIED = Decision.ALLOWED, Decision.DENIED
FOREIGN_ACCOUNT = "999999999999"

# --- principals (matrix.Bindings turns each into a principal ARN and its identity policies) -------------
AGENT = "agent"  # the role of the fleet's first agent, as its host assumes it
DISPATCHER, AUDIT, WATCHDOG, RESTORE = "dispatcher", "audit", "watchdog", "restore"  # the functions' roles
HOST = "host"  # an instance role of this account granted sts:AssumeRole on the agent role (docs/deploy.md)
APPROVER = "approver"  # an on-call role of this account given the stack's callers policy of the approvals URL
FOREIGN = "foreign"  # a role in another account whose own policy allows everything
EVENTS, CLOUDWATCH = "events.amazonaws.com", "cloudwatch.amazonaws.com"
LAMBDA, S3_LOGGING = "lambda.amazonaws.com", "logging.s3.amazonaws.com"

# --- resources --------------------------------------------------------------------------------------------
OWN_BACKUP = "{own_backup}"  # a backup object of the agent's own target, under agents/<agent>/
OWN_MANIFEST = "{own_manifest}"  # its manifest, written with a single PutObject
OWN_WAL = "{own_wal}"  # an archived WAL file of the agent's own target (naming.wal_object_key)
RESTORE_INDEX = "{restore_index}"  # a point-in-time restore's WAL index (naming.wal_index_key)
OTHER_AGENT_BACKUP = "{other_agent_backup}"  # under agents/<agent>-2/: same name prefix, another folder
OUTSIDE_AGENTS = "{outside_agents}"  # an object key outside agents/
BUCKET, ACCESS_LOG = "{bucket}", "{access_log}"  # the backup bucket; an object of its access-log bucket
KEY = "{key}"  # the pipeline's KMS key (bucket, queues, ledger, topic)
AGENT_QUEUE, AGENT_DLQ, OTHER_AGENT_QUEUE = "{agent_queue}", "{agent_dlq}", "{other_agent_queue}"
AUDIT_QUEUE, AUDIT_DLQ, RESTORE_QUEUE = "{audit_queue}", "{audit_dlq}", "{restore_queue}"
RESTORE_DLQ, REQUESTS_DLQ = "{restore_dlq}", "{requests_dlq}"  # REQUESTS_DLQ: of the on-demand backup rule
SILENCE_QUEUE, SILENCE_DLQ = "{silence_queue}", "{silence_dlq}"  # Silence/Unsilence Requested → the watchdog
BUS, TABLE, TABLE_INDEX, TOPIC = "{bus}", "{table}", "{table_index}", "{topic}"
AGENT_ROLE, DISPATCHER_ROLE, AUDIT_ROLE = "{agent_role}", "{dispatcher_role}", "{audit_role}"
WATCHDOG_ROLE, RESTORE_ROLE = "{watchdog_role}", "{restore_role}"
RESTORE_FUNCTION, DISPATCHER_FUNCTION = "{restore_function}", "{dispatcher_function}"  # its URL is the restore's
WATCHDOG_FUNCTION = "{watchdog_function}"

# --- request context: what the real requests carry ----------------------------------------------------------
SSE, SSE_KEY = "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"
CREATES, IF_NONE_MATCH = "s3:ObjectCreationOperation", "s3:if-none-match"
TAG, EXISTING_TAG = "s3:RequestObjectTag/retention", "s3:ExistingObjectTag/retention"
RETENTION = retention_tag_value("standard", "daily")

NONE: Context = {}
PLAIN_HTTP: Context = {"aws:SecureTransport": "false"}
SSE_OWN_KEY: Context = {SSE: "aws:kms", SSE_KEY: KEY}
# CreateMultipartUpload: the SSE headers (no tags: those are the audit's); it creates no object yet.
CREATE_UPLOAD: Context = {**SSE_OWN_KEY, CREATES: "false"}
UPLOAD_PART: Context = {CREATES: "false"}  # authorised as s3:PutObject, with no SSE header
COMPLETE_NEW: Context = {CREATES: "true", IF_NONE_MATCH: "*"}  # no SSE header; If-None-Match keeps it new
COMPLETE_OVERWRITE: Context = {CREATES: "true"}  # without If-None-Match S3 replaces an existing key
PUT_NEW: Context = {**SSE_OWN_KEY, CREATES: "true", IF_NONE_MATCH: "*"}  # the manifest
PUT_OVERWRITE: Context = {**SSE_OWN_KEY, CREATES: "true"}  # no If-None-Match: replaces a stored key
PUT_NO_SSE: Context = {CREATES: "true", IF_NONE_MATCH: "*"}  # no SSE header: bucket default applies
PUT_AES256: Context = {SSE: "AES256", CREATES: "true", IF_NONE_MATCH: "*"}
PUT_OTHER_KEY: Context = {SSE: "aws:kms", SSE_KEY: "{other_key}", CREATES: "true", IF_NONE_MATCH: "*"}
PUT_AWS_MANAGED_KEY: Context = {SSE: "aws:kms", CREATES: "true", IF_NONE_MATCH: "*"}  # aws:kms, no key id
TAG_NEW_OBJECT: Context = {TAG: RETENTION}  # the Tagging header of a create call, no existing tags
RETAG: Context = {EXISTING_TAG: RETENTION, TAG: retention_tag_value("short", "daily")}
TAG_WAL: Context = {TAG: retention_tag_value("standard", "wal")}  # a verified WAL file's first tag


def _via(service: str) -> Context:
    return {"kms:ViaService": f"{service}.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT}


VIA_S3, VIA_SQS, VIA_SNS, VIA_DYNAMODB = _via("s3"), _via("sqs"), _via("sns"), _via("dynamodb")
AGENT_SOURCE, OTHER_AGENT_SOURCE = "{agent_source}", "{other_agent_source}"  # backup.agent.<agent>
AS_AGENT: Context = {"events:source": (AGENT_SOURCE,)}
AS_OTHER_AGENT: Context = {"events:source": (OTHER_AGENT_SOURCE,)}
AS_BARE_AGENT: Context = {"events:source": (SOURCE_AGENT,)}  # the family name: parse_event refuses it
AS_PEOPLE: Context = {"events:source": (SOURCE_REQUESTS,)}
AS_PIPELINE: Context = {"events:source": (SOURCE_PIPELINE,)}
MIXED_BATCH: Context = {"events:source": (AGENT_SOURCE, SOURCE_REQUESTS)}  # one PutEvents, two entries
MIXED_AGENTS: Context = {"events:source": (AGENT_SOURCE, OTHER_AGENT_SOURCE)}
PIPELINE_AND_AGENT: Context = {"events:source": (SOURCE_PIPELINE, AGENT_SOURCE)}
NO_SOURCE: Context = {}  # a PutEvents whose entries carry no source at all
FROM_AUDIT_RULE: Context = {"aws:SourceArn": "{audit_rule}", "aws:SourceAccount": ACCOUNT}
FROM_RESTORE_RULE: Context = {"aws:SourceArn": "{restore_rule}", "aws:SourceAccount": ACCOUNT}
FROM_REQUESTS_RULE: Context = {"aws:SourceArn": "{requests_rule}", "aws:SourceAccount": ACCOUNT}
FROM_SILENCE_RULE: Context = {"aws:SourceArn": "{silence_rule}", "aws:SourceAccount": ACCOUNT}
OTHER_RULE: Context = {  # a rule of this account that is not the queue's (e.g. on the default bus)
    "aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/someone-elses",
    "aws:SourceAccount": ACCOUNT,
}
FOREIGN_RULE: Context = {
    "aws:SourceArn": f"arn:aws:events:{REGION}:{FOREIGN_ACCOUNT}:rule/elsewhere",
    "aws:SourceAccount": FOREIGN_ACCOUNT,
}
FROM_DISPATCHER_SCHEDULE: Context = {"aws:SourceArn": "{dispatcher_schedule}", "aws:SourceAccount": ACCOUNT}
FROM_WATCHDOG_SCHEDULE: Context = {"aws:SourceArn": "{watchdog_schedule}", "aws:SourceAccount": ACCOUNT}
FROM_RESTORE_SCHEDULE: Context = {"aws:SourceArn": "{restore_schedule}", "aws:SourceAccount": ACCOUNT}
THROUGH_IAM_URL: Context = {"lambda:FunctionUrlAuthType": "AWS_IAM"}  # InvokeFunctionUrl of an AWS_IAM URL
THROUGH_OPEN_URL: Context = {"lambda:FunctionUrlAuthType": "NONE"}
VIA_URL: Context = {"lambda:InvokedViaFunctionUrl": "true"}  # the InvokeFunction a URL call also needs
FROM_ALARM: Context = {"aws:SourceArn": "{alarm}", "aws:SourceAccount": ACCOUNT}
FROM_FOREIGN_ALARM: Context = {
    "aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{FOREIGN_ACCOUNT}:alarm:elsewhere",
    "aws:SourceAccount": FOREIGN_ACCOUNT,
}
HOST_TAG = f"aws:PrincipalTag/{AGENT_TRUST_TAG}"  # the agent roles' trust condition (docs/deploy.md)
TAGGED_FOR_AGENT: Context = {HOST_TAG: "{agent_trust_tag}"}
TAGGED_FOR_OTHER: Context = {HOST_TAG: "{other_agent_trust_tag}"}
TAGGED_OTHER_PIPELINE: Context = {HOST_TAG: "{other_pipeline_trust_tag}"}
FROM_BACKUP_BUCKET: Context = {"aws:SourceArn": BUCKET, "aws:SourceAccount": ACCOUNT}
FROM_FOREIGN_BUCKET: Context = {"aws:SourceArn": "arn:aws:s3:::elsewhere", "aws:SourceAccount": FOREIGN_ACCOUNT}

# --- statements rows name as what decides them (decided_by) ------------------------------------------------
OVERWRITE_DENY = "DenyAgentsOverwritingObjects"  # stacks/storage.py: agents create only with If-None-Match

# --- known gaps (the reason of each xfail; file:line of the policy to fix) -----------------------------------
# None today. A row failing for a known policy bug gets a constant here naming the file:line to fix.

# fmt: off
ROWS: tuple[Row, ...] = (
    # The agent backs up its own target: multipart upload, manifest, job queue, events.
    Row("agent-creates-upload", AGENT, "s3:PutObject", OWN_BACKUP, CREATE_UPLOAD, ALLOWED, "SSE-KMS, our key"),
    Row("agent-kms-data-key-via-s3", AGENT, "kms:GenerateDataKey", KEY, VIA_S3, ALLOWED, "S3 gets the data key"),
    Row("agent-uploads-part", AGENT, "s3:PutObject", OWN_BACKUP, UPLOAD_PART, ALLOWED, "no SSE header"),
    Row("agent-kms-decrypt-via-s3", AGENT, "kms:Decrypt", KEY, VIA_S3, ALLOWED, "multipart SSE-KMS needs Decrypt"),
    Row("agent-lists-own-parts", AGENT, "s3:ListMultipartUploadParts", OWN_BACKUP, NONE, ALLOWED, "its own upload"),
    Row("agent-completes-upload", AGENT, "s3:PutObject", OWN_BACKUP, COMPLETE_NEW, ALLOWED, "no SSE header"),
    Row("agent-aborts-upload", AGENT, "s3:AbortMultipartUpload", OWN_BACKUP, NONE, ALLOWED, "failed dump: abort"),
    Row("agent-puts-manifest", AGENT, "s3:PutObject", OWN_MANIFEST, PUT_NEW, ALLOWED, "one PutObject with SSE-KMS"),
    Row("agent-puts-no-sse-header", AGENT, "s3:PutObject", OWN_MANIFEST, PUT_NO_SSE, ALLOWED, "bucket default key"),
    Row("agent-receives-jobs", AGENT, "sqs:ReceiveMessage", AGENT_QUEUE, NONE, ALLOWED, "long-polls its queue"),
    Row("agent-heartbeats-job", AGENT, "sqs:ChangeMessageVisibility", AGENT_QUEUE, NONE, ALLOWED, "keeps job hidden"),
    Row("agent-deletes-done-job", AGENT, "sqs:DeleteMessage", AGENT_QUEUE, NONE, ALLOWED, "acks a finished job"),
    Row("agent-reads-queue-attrs", AGENT, "sqs:GetQueueAttributes", AGENT_QUEUE, NONE, ALLOWED, "queue settings"),
    Row("agent-kms-decrypt-via-sqs", AGENT, "kms:Decrypt", KEY, VIA_SQS, ALLOWED, "jobs are KMS-encrypted"),
    Row("agent-puts-agent-events", AGENT, "events:PutEvents", BUS, AS_AGENT, ALLOWED, "its own source"),
    # What an agent must never do.
    Row("agent-writes-other-prefix", AGENT, "s3:PutObject", OTHER_AGENT_BACKUP, PUT_NEW, DENIED, "own folder only"),
    Row("agent-writes-outside-agents", AGENT, "s3:PutObject", OUTSIDE_AGENTS, PUT_NEW, DENIED, "agents/<it>/ only"),
    Row("agent-deletes-backup", AGENT, "s3:DeleteObject", OWN_BACKUP, NONE, DENIED, "no host can destroy a backup"),
    Row("agent-deletes-version", AGENT, "s3:DeleteObjectVersion", OWN_BACKUP, NONE, DENIED, "nor a version of it"),
    Row("agent-puts-other-key", AGENT, "s3:PutObject", OWN_MANIFEST, PUT_OTHER_KEY, DENIED, "only the pipeline key"),
    Row("agent-puts-aes256", AGENT, "s3:PutObject", OWN_MANIFEST, PUT_AES256, DENIED, "SSE-S3 is not SSE-KMS"),
    Row("agent-puts-aws-managed-key", AGENT, "s3:PutObject", OWN_MANIFEST, PUT_AWS_MANAGED_KEY, DENIED, "aws/s3 key"),
    Row("agent-reads-own-backup", AGENT, "s3:GetObject", OWN_BACKUP, NONE, DENIED, "write-only; restores presign"),
    Row("agent-reads-other-backup", AGENT, "s3:GetObject", OTHER_AGENT_BACKUP, NONE, DENIED, "no read of others"),
    Row("agent-lists-bucket", AGENT, "s3:ListBucket", BUCKET, NONE, DENIED, "no listing"),
    Row("agent-retags-existing", AGENT, "s3:PutObjectTagging", OWN_BACKUP, RETAG, DENIED, "would shorten retention"),
    Row("agent-tags-new-object", AGENT, "s3:PutObjectTagging", OWN_BACKUP, TAG_NEW_OBJECT, DENIED, "audit tags"),
    Row("agent-tags-version", AGENT, "s3:PutObjectVersionTagging", OWN_BACKUP, RETAG, DENIED, "nor a version's tags"),
    Row("agent-overwrites-manifest", AGENT, "s3:PutObject", OWN_MANIFEST, PUT_OVERWRITE, DENIED, "replaces stored key",
        decided_by=OVERWRITE_DENY),
    Row("agent-completes-overwrite", AGENT, "s3:PutObject", OWN_BACKUP, COMPLETE_OVERWRITE, DENIED,
        "no If-None-Match: would replace a stored backup", decided_by=OVERWRITE_DENY),
    Row("agent-shortens-lock", AGENT, "s3:PutObjectRetention", OWN_BACKUP, NONE, DENIED, "Object Lock stays"),
    Row("agent-changes-bucket-policy", AGENT, "s3:PutBucketPolicy", BUCKET, NONE, DENIED, "no bucket admin"),
    Row("agent-puts-over-http", AGENT, "s3:PutObject", OWN_MANIFEST, {**PUT_NEW, **PLAIN_HTTP}, DENIED, "TLS only"),
    Row("agent-receives-other-jobs", AGENT, "sqs:ReceiveMessage", OTHER_AGENT_QUEUE, NONE, DENIED, "own queue only"),
    Row("agent-sends-itself-jobs", AGENT, "sqs:SendMessage", AGENT_QUEUE, NONE, DENIED, "only functions issue jobs"),
    Row("agent-reads-own-dlq", AGENT, "sqs:ReceiveMessage", AGENT_DLQ, NONE, DENIED, "DLQ is for the operators"),
    Row("agent-receives-over-http", AGENT, "sqs:ReceiveMessage", AGENT_QUEUE, PLAIN_HTTP, DENIED, "TLS only"),
    Row("agent-puts-people-events", AGENT, "events:PutEvents", BUS, AS_PEOPLE, DENIED, "posing as a person"),
    Row("agent-puts-pipeline-events", AGENT, "events:PutEvents", BUS, AS_PIPELINE, DENIED, "posing as a Lambda"),
    Row("agent-puts-mixed-batch", AGENT, "events:PutEvents", BUS, MIXED_BATCH, DENIED, "one smuggled entry denies"),
    Row("agent-puts-other-agent-events", AGENT, "events:PutEvents", BUS, AS_OTHER_AGENT, DENIED, "posing as B"),
    Row("agent-puts-bare-agent-source", AGENT, "events:PutEvents", BUS, AS_BARE_AGENT, DENIED, "no anonymous agent"),
    Row("agent-puts-mixed-agents", AGENT, "events:PutEvents", BUS, MIXED_AGENTS, DENIED, "B's entry in A's batch"),
    Row("agent-puts-no-source", AGENT, "events:PutEvents", BUS, NO_SOURCE, DENIED, "ForAllValues of nothing"),
    Row("agent-kms-decrypt-direct", AGENT, "kms:Decrypt", KEY, NONE, DENIED, "no ViaService: any ciphertext"),
    Row("agent-kms-decrypt-via-ddb", AGENT, "kms:Decrypt", KEY, VIA_DYNAMODB, DENIED, "the ledger is not its data"),
    # The dispatcher: ledger rows and jobs to the agents' queues.
    Row("dispatcher-sends-job", DISPATCHER, "sqs:SendMessage", AGENT_QUEUE, NONE, ALLOWED, "jobs in batches of 10"),
    Row("dispatcher-kms-for-job", DISPATCHER, "kms:GenerateDataKey", KEY, VIA_SQS, ALLOWED, "encrypted job queue"),
    Row("dispatcher-writes-expected", DISPATCHER, "dynamodb:PutItem", TABLE, NONE, ALLOWED, "expected-run rows"),
    Row("dispatcher-reads-jobs", DISPATCHER, "dynamodb:BatchGetItem", TABLE, NONE, ALLOWED, "dispatch view"),
    Row("dispatcher-queries-unsent", DISPATCHER, "dynamodb:Query", TABLE, NONE, ALLOWED, "jobs owed a send"),
    Row("dispatcher-clears-unsent", DISPATCHER, "dynamodb:DeleteItem", TABLE, NONE, ALLOWED, "sent at last"),
    Row("dispatcher-advances-marker", DISPATCHER, "dynamodb:UpdateItem", TABLE, NONE, ALLOWED, "conditional marker"),
    Row("dispatcher-kms-via-ddb", DISPATCHER, "kms:Decrypt", KEY, VIA_DYNAMODB, ALLOWED, "the ledger's CMK"),
    Row("dispatcher-queries-index", DISPATCHER, "dynamodb:Query", TABLE_INDEX, NONE, DENIED, "schedules: the fleet"),
    Row("dispatcher-scans-ledger", DISPATCHER, "dynamodb:Scan", TABLE, NONE, DENIED, "no code scans the ledger"),
    Row("dispatcher-batch-writes", DISPATCHER, "dynamodb:BatchWriteItem", TABLE, NONE, DENIED, "unconditional writes"),
    Row("dispatcher-puts-events", DISPATCHER, "events:PutEvents", BUS, AS_PIPELINE, DENIED, "sends no events"),
    Row("dispatcher-forges-agent", DISPATCHER, "events:PutEvents", BUS, AS_AGENT, DENIED, "forged agent report"),
    Row("dispatcher-kms-reencrypt", DISPATCHER, "kms:ReEncryptFrom", KEY, VIA_SQS, DENIED, "no ReEncrypt anywhere"),
    Row("dispatcher-kms-direct", DISPATCHER, "kms:Decrypt", KEY, NONE, DENIED, "only through a service"),
    Row("dispatcher-reads-queue-attrs", DISPATCHER, "sqs:GetQueueAttributes", AGENT_QUEUE, NONE, DENIED, "send only"),
    Row("dispatcher-reads-backup", DISPATCHER, "s3:GetObject", OWN_BACKUP, NONE, DENIED, "never reads backups"),
    Row("dispatcher-deletes-backup", DISPATCHER, "s3:DeleteObject", OWN_BACKUP, NONE, DENIED, "no function deletes"),
    Row("dispatcher-takes-agent-job", DISPATCHER, "sqs:ReceiveMessage", AGENT_QUEUE, NONE, DENIED, "jobs are agents'"),
    # The audit function: agent events in, object cross-check, retention tags, ledger, alerts.
    Row("audit-receives-event", AUDIT, "sqs:ReceiveMessage", AUDIT_QUEUE, NONE, ALLOWED, "its event queue"),
    Row("audit-deletes-event", AUDIT, "sqs:DeleteMessage", AUDIT_QUEUE, NONE, ALLOWED, "batch ack"),
    Row("audit-kms-decrypt-events", AUDIT, "kms:Decrypt", KEY, VIA_SQS, ALLOWED, "encrypted event queue"),
    Row("audit-heads-backup", AUDIT, "s3:GetObject", OWN_BACKUP, NONE, ALLOWED, "HeadObject is s3:GetObject"),
    Row("audit-reads-tags", AUDIT, "s3:GetObjectTagging", OWN_BACKUP, NONE, ALLOWED, "current retention tag"),
    Row("audit-applies-retention", AUDIT, "s3:PutObjectTagging", OWN_BACKUP, RETAG, ALLOWED, "GFS tiers"),
    Row("audit-kms-decrypt-via-s3", AUDIT, "kms:Decrypt", KEY, VIA_S3, ALLOWED, "reads SSE-KMS objects"),
    Row("audit-updates-ledger", AUDIT, "dynamodb:UpdateItem", TABLE, NONE, ALLOWED, "conditional run records"),
    Row("audit-records-run", AUDIT, "dynamodb:PutItem", TABLE, NONE, ALLOWED, "Backup Started"),
    Row("audit-reads-run", AUDIT, "dynamodb:GetItem", TABLE, NONE, ALLOWED, "the run an event names"),
    Row("audit-finds-silences", AUDIT, "dynamodb:Query", TABLE, NONE, ALLOWED, "does a silence hold a failure?"),
    Row("audit-resolves-incident", AUDIT, "dynamodb:DeleteItem", TABLE, NONE, ALLOWED, "a good backup resolves"),
    Row("audit-kms-via-ddb", AUDIT, "kms:Decrypt", KEY, VIA_DYNAMODB, ALLOWED, "the ledger's CMK"),
    Row("audit-scans-ledger", AUDIT, "dynamodb:Scan", TABLE, NONE, DENIED, "no code scans the ledger"),
    Row("audit-batch-writes", AUDIT, "dynamodb:BatchWriteItem", TABLE, NONE, DENIED, "unconditional writes"),
    Row("audit-queries-index", AUDIT, "dynamodb:Query", TABLE_INDEX, NONE, DENIED, "deadlines are the watchdog's"),
    Row("audit-puts-events", AUDIT, "events:PutEvents", BUS, AS_PIPELINE, DENIED, "sends no events"),
    Row("audit-forges-agent-event", AUDIT, "events:PutEvents", BUS, AS_AGENT, DENIED, "would record its own backup"),
    Row("audit-kms-reencrypt", AUDIT, "kms:ReEncryptTo", KEY, VIA_S3, DENIED, "no ReEncrypt anywhere"),
    Row("audit-kms-direct", AUDIT, "kms:Decrypt", KEY, NONE, DENIED, "only through a service"),
    Row("audit-kms-data-key-via-s3", AUDIT, "kms:GenerateDataKey", KEY, VIA_S3, DENIED, "it writes no object"),
    Row("audit-sends-job", AUDIT, "sqs:SendMessage", AGENT_QUEUE, NONE, DENIED, "issues no jobs"),
    Row("audit-publishes-alert", AUDIT, "sns:Publish", TOPIC, NONE, ALLOWED, "failed backups page on-call"),
    Row("audit-kms-for-alert", AUDIT, "kms:GenerateDataKey", KEY, VIA_SNS, ALLOWED, "encrypted topic"),
    Row("audit-deletes-backup", AUDIT, "s3:DeleteObject", OWN_BACKUP, NONE, DENIED, "no function deletes"),
    Row("audit-deletes-version", AUDIT, "s3:DeleteObjectVersion", OWN_BACKUP, NONE, DENIED, "nor a version"),
    Row("audit-overwrites-backup", AUDIT, "s3:PutObject", OWN_BACKUP, PUT_OVERWRITE, DENIED, "audit only reads"),
    # The watchdog: ledger, alerts, Backup Missing events.
    Row("watchdog-queries-deadlines", WATCHDOG, "dynamodb:Query", TABLE_INDEX, NONE, ALLOWED, "watch-deadline GSI"),
    Row("watchdog-records-incident", WATCHDOG, "dynamodb:PutItem", TABLE, NONE, ALLOWED, "one incident per cause"),
    Row("watchdog-publishes-alert", WATCHDOG, "sns:Publish", TOPIC, NONE, ALLOWED, "past-RPO alerts"),
    Row("watchdog-lists-subscriptions", WATCHDOG, "sns:ListSubscriptionsByTopic", TOPIC, NONE, ALLOWED, "canary"),
    Row("watchdog-unsubscribes", WATCHDOG, "sns:Unsubscribe", TOPIC, NONE, DENIED, "reads subscriptions only"),
    Row("audit-lists-subscriptions", AUDIT, "sns:ListSubscriptionsByTopic", TOPIC, NONE, DENIED, "canary's"),
    Row("watchdog-kms-for-alert", WATCHDOG, "kms:GenerateDataKey", KEY, VIA_SNS, ALLOWED, "encrypted topic"),
    Row("watchdog-announces-missing", WATCHDOG, "events:PutEvents", BUS, AS_PIPELINE, ALLOWED, "Backup Missing"),
    Row("watchdog-forges-agent-event", WATCHDOG, "events:PutEvents", BUS, AS_AGENT, DENIED, "forged agent report"),
    Row("watchdog-forges-request", WATCHDOG, "events:PutEvents", BUS, AS_PEOPLE, DENIED, "posing as a person"),
    Row("watchdog-mixed-batch", WATCHDOG, "events:PutEvents", BUS, PIPELINE_AND_AGENT, DENIED, "one forged entry"),
    Row("watchdog-reads-targets", WATCHDOG, "dynamodb:BatchGetItem", TABLE, NONE, ALLOWED, "target states"),
    Row("watchdog-lists-incidents", WATCHDOG, "dynamodb:Query", TABLE, NONE, ALLOWED, "open incidents"),
    Row("watchdog-claims-notice", WATCHDOG, "dynamodb:UpdateItem", TABLE, NONE, ALLOWED, "one alert per cause"),
    Row("watchdog-resolves-incident", WATCHDOG, "dynamodb:DeleteItem", TABLE, NONE, ALLOWED, "recovery"),
    Row("watchdog-kms-via-ddb", WATCHDOG, "kms:Decrypt", KEY, VIA_DYNAMODB, ALLOWED, "the ledger's CMK"),
    Row("watchdog-scans-ledger", WATCHDOG, "dynamodb:Scan", TABLE, NONE, DENIED, "no code scans the ledger"),
    Row("watchdog-batch-writes", WATCHDOG, "dynamodb:BatchWriteItem", TABLE, NONE, DENIED, "unconditional writes"),
    Row("watchdog-kms-reencrypt", WATCHDOG, "kms:ReEncryptFrom", KEY, VIA_SNS, DENIED, "no ReEncrypt anywhere"),
    Row("watchdog-kms-direct", WATCHDOG, "kms:GenerateDataKey", KEY, NONE, DENIED, "only through a service"),
    Row("watchdog-reads-backup", WATCHDOG, "s3:GetObject", OWN_BACKUP, NONE, DENIED, "needs no object access"),
    Row("watchdog-sends-job", WATCHDOG, "sqs:SendMessage", AGENT_QUEUE, NONE, DENIED, "issues no jobs"),
    Row("watchdog-receives-silence", WATCHDOG, "sqs:ReceiveMessage", SILENCE_QUEUE, NONE, ALLOWED, "silence events"),
    Row("watchdog-deletes-silence", WATCHDOG, "sqs:DeleteMessage", SILENCE_QUEUE, NONE, ALLOWED, "handled"),
    Row("watchdog-kms-decrypt-silence", WATCHDOG, "kms:Decrypt", KEY, VIA_SQS, ALLOWED, "encrypted event queue"),
    Row("watchdog-takes-audit-event", WATCHDOG, "sqs:ReceiveMessage", AUDIT_QUEUE, NONE, DENIED, "not its queue"),
    # The restore coordinator: reads (and presigns) backups, dispatches restores, announces outcomes.
    Row("restore-presigns-get", RESTORE, "s3:GetObject", OWN_BACKUP, NONE, ALLOWED, "the URL is its GetObject"),
    Row("restore-gets-version", RESTORE, "s3:GetObjectVersion", OWN_BACKUP, NONE, ALLOWED, "point-in-time pick"),
    Row("restore-kms-decrypt-via-s3", RESTORE, "kms:Decrypt", KEY, VIA_S3, ALLOWED, "signer holds kms:Decrypt"),
    Row("restore-sends-job", RESTORE, "sqs:SendMessage", AGENT_QUEUE, NONE, ALLOWED, "restore job to the agent"),
    Row("restore-kms-for-job", RESTORE, "kms:GenerateDataKey", KEY, VIA_SQS, ALLOWED, "encrypted job queue"),
    Row("restore-receives-request", RESTORE, "sqs:ReceiveMessage", RESTORE_QUEUE, NONE, ALLOWED, "its event queue"),
    Row("restore-takes-silence", RESTORE, "sqs:ReceiveMessage", SILENCE_QUEUE, NONE, DENIED, "the watchdog's queue"),
    Row("restore-announces-outcome", RESTORE, "events:PutEvents", BUS, AS_PIPELINE, ALLOWED, "Restore Rejected"),
    Row("restore-publishes-alert", RESTORE, "sns:Publish", TOPIC, NONE, ALLOWED, "approval notices"),
    Row("restore-tracks-request", RESTORE, "dynamodb:UpdateItem", TABLE, NONE, ALLOWED, "restore state"),
    Row("restore-deletes-backup", RESTORE, "s3:DeleteObject", OWN_BACKUP, NONE, DENIED, "no function deletes"),
    Row("restore-writes-backup", RESTORE, "s3:PutObject", OWN_BACKUP, PUT_NEW, DENIED, "only agents write"),
    Row("restore-self-approves", RESTORE, "events:PutEvents", BUS, AS_PEOPLE, DENIED, "forged Restore Approved"),
    Row("restore-forges-agent-report", RESTORE, "events:PutEvents", BUS, AS_AGENT, DENIED, "forged Restore Succeeded"),
    Row("restore-creates-request", RESTORE, "dynamodb:PutItem", TABLE, NONE, ALLOWED, "conditional create"),
    Row("restore-reads-request", RESTORE, "dynamodb:GetItem", TABLE, NONE, ALLOWED, "restore state"),
    Row("restore-finds-latest", RESTORE, "dynamodb:Query", TABLE, NONE, ALLOWED, "latest good run"),
    Row("restore-reads-targets", RESTORE, "dynamodb:BatchGetItem", TABLE, NONE, ALLOWED, "due drills"),
    Row("restore-queries-watches", RESTORE, "dynamodb:Query", TABLE_INDEX, NONE, ALLOWED, "approval/restore deadlines"),
    Row("restore-kms-via-ddb", RESTORE, "kms:Decrypt", KEY, VIA_DYNAMODB, ALLOWED, "the ledger's CMK"),
    Row("restore-deletes-ledger-item", RESTORE, "dynamodb:DeleteItem", TABLE, NONE, DENIED, "its code deletes nothing"),
    Row("restore-scans-ledger", RESTORE, "dynamodb:Scan", TABLE, NONE, DENIED, "no code scans the ledger"),
    Row("restore-batch-writes", RESTORE, "dynamodb:BatchWriteItem", TABLE, NONE, DENIED, "unconditional writes"),
    Row("restore-kms-reencrypt", RESTORE, "kms:ReEncryptFrom", KEY, VIA_S3, DENIED, "no ReEncrypt anywhere"),
    Row("restore-kms-direct", RESTORE, "kms:Decrypt", KEY, NONE, DENIED, "only through a service"),
    Row("restore-kms-data-key-via-s3", RESTORE, "kms:GenerateDataKey", KEY, VIA_S3, ALLOWED, "WAL index's data key"),
    # A point-in-time restore's WAL index (restores/<id>/wal-index.json): the coordinator's only write, which
    # agents can neither read nor plant (they fetch it, and every WAL file, through URLs the coordinator signs).
    Row("restore-writes-wal-index", RESTORE, "s3:PutObject", RESTORE_INDEX, PUT_NO_SSE, ALLOWED, "bucket default key"),
    Row("restore-reads-back-wal-index", RESTORE, "s3:GetObject", RESTORE_INDEX, NONE, ALLOWED, "retry; its URL"),
    Row("restore-presigns-wal", RESTORE, "s3:GetObject", OWN_WAL, NONE, ALLOWED, "each WAL file's URL"),
    Row("restore-writes-wal", RESTORE, "s3:PutObject", OWN_WAL, PUT_NO_SSE, DENIED, "only agents archive WAL"),
    Row("restore-writes-outside-restores", RESTORE, "s3:PutObject", OUTSIDE_AGENTS, PUT_NO_SSE, DENIED,
        "restores/ only"),
    Row("restore-deletes-wal-index", RESTORE, "s3:DeleteObject", RESTORE_INDEX, NONE, DENIED, "lifecycle expires it"),
    Row("agent-reads-wal-index", AGENT, "s3:GetObject", RESTORE_INDEX, NONE, DENIED, "through its presigned URL"),
    Row("agent-writes-wal-index", AGENT, "s3:PutObject", RESTORE_INDEX, PUT_NEW, DENIED, "no planted replay list"),
    Row("agent-reads-own-wal", AGENT, "s3:GetObject", OWN_WAL, NONE, DENIED, "wal-fetch reads presigned URLs"),
    # Services: EventBridge into the event queues, alarms into the topic, S3 access logs.
    Row("events-to-audit-queue", EVENTS, "sqs:SendMessage", AUDIT_QUEUE, FROM_AUDIT_RULE, ALLOWED, "audit rule"),
    Row("events-to-restore-queue", EVENTS, "sqs:SendMessage", RESTORE_QUEUE, FROM_RESTORE_RULE, ALLOWED, "its rule"),
    Row("events-foreign-to-audit", EVENTS, "sqs:SendMessage", AUDIT_QUEUE, FOREIGN_RULE, DENIED, "forged agent events"),
    Row("events-foreign-to-restore", EVENTS, "sqs:SendMessage", RESTORE_QUEUE, FOREIGN_RULE, DENIED, "forged requests"),
    Row("events-other-rule-to-audit", EVENTS, "sqs:SendMessage", AUDIT_QUEUE, OTHER_RULE, DENIED, "its rule only"),
    Row("events-audit-rule-to-restore", EVENTS, "sqs:SendMessage", RESTORE_QUEUE, FROM_AUDIT_RULE, DENIED, "not ours"),
    Row("events-to-audit-dlq", EVENTS, "sqs:SendMessage", AUDIT_DLQ, FROM_AUDIT_RULE, ALLOWED, "undeliverable"),
    Row("events-foreign-to-audit-dlq", EVENTS, "sqs:SendMessage", AUDIT_DLQ, FOREIGN_RULE, DENIED, "SourceArn"),
    Row("events-to-restore-dlq", EVENTS, "sqs:SendMessage", RESTORE_DLQ, FROM_RESTORE_RULE, ALLOWED, "undeliverable"),
    Row("events-audit-rule-to-rdlq", EVENTS, "sqs:SendMessage", RESTORE_DLQ, FROM_AUDIT_RULE, DENIED, "not its DLQ"),
    Row("events-to-silence-queue", EVENTS, "sqs:SendMessage", SILENCE_QUEUE, FROM_SILENCE_RULE, ALLOWED, "its rule"),
    Row("events-foreign-to-silence", EVENTS, "sqs:SendMessage", SILENCE_QUEUE, FOREIGN_RULE, DENIED, "forged silence"),
    Row("events-audit-rule-to-silence", EVENTS, "sqs:SendMessage", SILENCE_QUEUE, FROM_AUDIT_RULE, DENIED, "agents'"),
    Row("events-to-silence-dlq", EVENTS, "sqs:SendMessage", SILENCE_DLQ, FROM_SILENCE_RULE, ALLOWED, "undeliverable"),
    Row("events-audit-rule-to-sdlq", EVENTS, "sqs:SendMessage", SILENCE_DLQ, FROM_AUDIT_RULE, DENIED, "not its DLQ"),
    Row("events-to-requests-dlq", EVENTS, "sqs:SendMessage", REQUESTS_DLQ, FROM_REQUESTS_RULE, ALLOWED, "λ failed"),
    Row("events-to-agent-queue", EVENTS, "sqs:SendMessage", AGENT_QUEUE, FROM_AUDIT_RULE, DENIED, "no rule feeds jobs"),
    Row("events-kms-data-key", EVENTS, "kms:GenerateDataKey", KEY, FROM_AUDIT_RULE, ALLOWED, "encrypted queue"),
    Row("events-kms-decrypt", EVENTS, "kms:Decrypt", KEY, FROM_AUDIT_RULE, ALLOWED, "SQS SSE needs it too"),
    Row("events-foreign-kms", EVENTS, "kms:GenerateDataKey", KEY, FOREIGN_RULE, DENIED, "confused deputy"),
    Row("events-foreign-kms-decrypt", EVENTS, "kms:Decrypt", KEY, FOREIGN_RULE, DENIED, "SourceAccount"),
    Row("events-other-rule-kms", EVENTS, "kms:GenerateDataKey", KEY, OTHER_RULE, ALLOWED,
        "this account's rules: naming ours in the key policy is a cycle; the queue policies admit only theirs"),
    Row("events-kms-reencrypt", EVENTS, "kms:ReEncryptFrom", KEY, FROM_AUDIT_RULE, DENIED, "SQS SSE needs none"),
    Row("alarm-publishes-alert", CLOUDWATCH, "sns:Publish", TOPIC, FROM_ALARM, ALLOWED, "DLQ alarms"),
    Row("foreign-alarm-publishes", CLOUDWATCH, "sns:Publish", TOPIC, FROM_FOREIGN_ALARM, DENIED, "SourceAccount"),
    Row("events-publishes-alert", EVENTS, "sns:Publish", TOPIC, FROM_AUDIT_RULE, DENIED, "no rule targets it"),
    Row("alarm-publishes-over-http", CLOUDWATCH, "sns:Publish", TOPIC, {**FROM_ALARM, **PLAIN_HTTP}, DENIED, "TLS"),
    Row("alarm-kms-data-key", CLOUDWATCH, "kms:GenerateDataKey", KEY, FROM_ALARM, ALLOWED, "encrypted topic"),
    Row("foreign-alarm-kms", CLOUDWATCH, "kms:GenerateDataKey", KEY, FROM_FOREIGN_ALARM, DENIED, "SourceAccount"),
    Row("s3-delivers-access-log", S3_LOGGING, "s3:PutObject", ACCESS_LOG, FROM_BACKUP_BUCKET, ALLOWED, "our bucket"),
    Row("s3-foreign-access-log", S3_LOGGING, "s3:PutObject", ACCESS_LOG, FROM_FOREIGN_BUCKET, DENIED, "not ours"),
    # Who may become whom (trust policies), and an outsider with every permission of its own.
    Row("lambda-assumes-dispatcher", LAMBDA, "sts:AssumeRole", DISPATCHER_ROLE, NONE, ALLOWED, "function role"),
    Row("lambda-assumes-audit", LAMBDA, "sts:AssumeRole", AUDIT_ROLE, NONE, ALLOWED, "function role"),
    Row("lambda-assumes-watchdog", LAMBDA, "sts:AssumeRole", WATCHDOG_ROLE, NONE, ALLOWED, "function role"),
    Row("lambda-assumes-restore", LAMBDA, "sts:AssumeRole", RESTORE_ROLE, NONE, ALLOWED, "function role"),
    Row("lambda-assumes-agent", LAMBDA, "sts:AssumeRole", AGENT_ROLE, NONE, DENIED, "agents are hosts"),
    Row("host-assumes-agent", HOST, "sts:AssumeRole", AGENT_ROLE, TAGGED_FOR_AGENT, ALLOWED, "tagged and granted"),
    Row("untagged-host-assumes-agent", HOST, "sts:AssumeRole", AGENT_ROLE, NONE, DENIED, "a grant alone is not trust"),
    Row("other-host-assumes-agent", HOST, "sts:AssumeRole", AGENT_ROLE, TAGGED_FOR_OTHER, DENIED, "B's host"),
    Row("other-pipeline-host-assumes", HOST, "sts:AssumeRole", AGENT_ROLE, TAGGED_OTHER_PIPELINE, DENIED,
        "same agent name, another pipeline"),
    Row("foreign-assumes-agent", FOREIGN, "sts:AssumeRole", AGENT_ROLE, NONE, DENIED, "trust is this account"),
    Row("foreign-tagged-assumes-agent", FOREIGN, "sts:AssumeRole", AGENT_ROLE, TAGGED_FOR_AGENT, DENIED,
        "a tag in another account is not ours"),
    Row("foreign-reads-backup", FOREIGN, "s3:GetObject", OWN_BACKUP, NONE, DENIED, "bucket policy grants no one"),
    Row("foreign-kms-decrypt", FOREIGN, "kms:Decrypt", KEY, VIA_S3, DENIED, "key policy trusts this account"),
    Row("foreign-sends-job", FOREIGN, "sqs:SendMessage", AGENT_QUEUE, NONE, DENIED, "no forged jobs"),
    # The approvals URL (the restore function's URL, AuthType AWS_IAM): AWS names every caller; the coordinator
    # then lets only the fleet's approvers, never the requester, approve (tests/restore/test_restore_approvals.py).
    Row("approver-calls-approvals-url", APPROVER, "lambda:InvokeFunctionUrl", RESTORE_FUNCTION, THROUGH_IAM_URL,
        ALLOWED, "backupctl restore/approve, SigV4"),
    Row("approver-invokes-via-url", APPROVER, "lambda:InvokeFunction", RESTORE_FUNCTION, VIA_URL, ALLOWED,
        "a URL call needs InvokeFunction too"),
    Row("approver-invokes-directly", APPROVER, "lambda:InvokeFunction", RESTORE_FUNCTION, NONE, DENIED,
        "a direct Invoke could make up the caller"),
    Row("approver-calls-an-open-url", APPROVER, "lambda:InvokeFunctionUrl", RESTORE_FUNCTION, THROUGH_OPEN_URL,
        DENIED, "only an IAM-authenticated URL"),
    Row("approver-calls-dispatcher-url", APPROVER, "lambda:InvokeFunctionUrl", DISPATCHER_FUNCTION,
        THROUGH_IAM_URL, DENIED, "the restore function only"),
    Row("host-calls-approvals-url", HOST, "lambda:InvokeFunctionUrl", RESTORE_FUNCTION, THROUGH_IAM_URL, DENIED,
        "the account grant only delegates to IAM"),
    Row("agent-calls-approvals-url", AGENT, "lambda:InvokeFunctionUrl", RESTORE_FUNCTION, THROUGH_IAM_URL, DENIED,
        "a host never asks or approves"),
    Row("foreign-calls-approvals-url", FOREIGN, "lambda:InvokeFunctionUrl", RESTORE_FUNCTION, THROUGH_IAM_URL,
        DENIED, "no approver lives in its account"),
    # The schedules invoke their functions; nothing else may, not even EventBridge for another rule.
    Row("events-runs-dispatcher-tick", EVENTS, "lambda:InvokeFunction", DISPATCHER_FUNCTION, FROM_DISPATCHER_SCHEDULE,
        ALLOWED, "dispatcher schedule"),
    Row("events-runs-watchdog-tick", EVENTS, "lambda:InvokeFunction", WATCHDOG_FUNCTION, FROM_WATCHDOG_SCHEDULE,
        ALLOWED, "watchdog schedule"),
    Row("events-runs-restore-tick", EVENTS, "lambda:InvokeFunction", RESTORE_FUNCTION, FROM_RESTORE_SCHEDULE,
        ALLOWED, "drills, approval expiry"),
    Row("events-audit-rule-runs-restore", EVENTS, "lambda:InvokeFunction", RESTORE_FUNCTION, FROM_AUDIT_RULE, DENIED,
        "only its own schedule"),
    Row("events-foreign-runs-restore", EVENTS, "lambda:InvokeFunction", RESTORE_FUNCTION, FOREIGN_RULE, DENIED,
        "no other account's rule"),
    # Object Lock: the audit alone sets a backup's retention (from its GFS tier); no role of the pipeline may
    # bypass governance mode, so only an operator's break-glass grant can shorten one (docs/runbook.md).
    Row("audit-locks-backup", AUDIT, "s3:PutObjectRetention", OWN_BACKUP, NONE, ALLOWED, "tier's days"),
    Row("audit-reads-retention", AUDIT, "s3:GetObjectRetention", OWN_BACKUP, NONE, ALLOWED, "never shortens"),
    Row("audit-heads-wal", AUDIT, "s3:GetObject", OWN_WAL, NONE, ALLOWED, "HeadObject of an archived WAL file"),
    Row("audit-tags-wal", AUDIT, "s3:PutObjectTagging", OWN_WAL, TAG_WAL, ALLOWED, "retention=<class>-wal"),
    Row("audit-locks-wal", AUDIT, "s3:PutObjectRetention", OWN_WAL, NONE, ALLOWED, "locked as long as it is kept"),
    Row("agent-tags-wal", AGENT, "s3:PutObjectTagging", OWN_WAL, TAG_WAL, DENIED, "WAL retention is the audit's"),
    Row("audit-bypasses-governance", AUDIT, "s3:BypassGovernanceRetention", OWN_BACKUP, NONE, DENIED, "break-glass"),
    Row("agent-sets-retention", AGENT, "s3:PutObjectRetention", OWN_BACKUP, NONE, DENIED, "its own lock"),
    Row("agent-bypasses-governance", AGENT, "s3:BypassGovernanceRetention", OWN_BACKUP, NONE, DENIED, "unlock"),
    Row("restore-sets-retention", RESTORE, "s3:PutObjectRetention", OWN_BACKUP, NONE, DENIED, "audit's job"),
    Row("watchdog-sets-retention", WATCHDOG, "s3:PutObjectRetention", OWN_BACKUP, NONE, DENIED, "audit's job"),
)
# fmt: on
