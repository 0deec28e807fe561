"""What each function may do: one table of rights per function, and the statements that grant them.

Every right is an explicit statement with a Sid (the access matrix names them; cdk-nag sees no wildcard):

- the ledger: exactly the DynamoDB actions the function's code calls (``LEDGER_ACTIONS``; no Scan, no
  BatchWriteItem, no stream reads), on the table, and ``Query`` on the watch-deadline index only for the
  functions that read it;
- the key: only through the service that needs it (``kms:ViaService``) and only the operations that
  service performs for the caller — no ``kms:ReEncrypt*`` (which CDK's ``grant_*`` would add);
- the bus: ``events:PutEvents`` only for the functions that send events, each bound to its sources by
  ``events:source`` (a set operator: every entry of a batch must carry one of them);
- SQS and SNS: send jobs, consume their event queue, publish alerts — with the key use each needs;
- the off-site vault (``pipeline.offsite``): the watchdog and the restore coordinator read copies there;
- the restore coordinator's own objects under ``restores/`` (WAL indexes): its only write in the bucket.

Change a function's code to call something new and its row of ``LEDGER_ACTIONS`` (or its grant here) is
where the right goes; the access matrix (tests/infrastructure/test_access_matrix.py) proves each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

from backup_contracts import ledger
from backup_contracts.naming import AGENT_PREFIX_ROOT, RESTORE_PREFIX_ROOT, SOURCE_PIPELINE
from stacks.vault_names import VaultNames

# The DynamoDB actions each function's code calls on the ledger (functions/backup_functions/ledger/client.py
# turns get/batch_get/query/put/update/delete into GetItem/BatchGetItem/Query/PutItem/UpdateItem/DeleteItem).
LEDGER_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "dispatcher": (
        "dynamodb:BatchGetItem",  # jobs.get_many
        "dynamodb:DeleteItem",  # jobs.clear_unsent
        "dynamodb:GetItem",  # jobs.marker
        "dynamodb:PutItem",  # jobs.create, jobs.record_unsent, targets.bootstrap
        "dynamodb:Query",  # jobs.unsent
        "dynamodb:UpdateItem",  # jobs.advance_marker
    ),
    "audit": (
        "dynamodb:DeleteItem",  # incidents.resolve
        "dynamodb:GetItem",  # runs.get, targets.get, incidents.get
        "dynamodb:PutItem",  # runs.started
        "dynamodb:Query",  # silences.in_force (only when a failure would page)
        "dynamodb:UpdateItem",  # runs.ended, jobs.started/ended, targets.record_*, runs.claim_period
    ),
    "watchdog": (
        "dynamodb:BatchGetItem",  # targets.get_many, agents
        "dynamodb:DeleteItem",  # incidents.resolve
        "dynamodb:GetItem",  # incidents.get
        "dynamodb:PutItem",  # incidents.open, silences.record
        "dynamodb:Query",  # incidents.list_open, silences.in_force (and the watch-deadline index)
        "dynamodb:UpdateItem",  # incidents.claim_notification/resolve, outbox clears, jobs.clear_superseded_watch
    ),
    "restore": (
        "dynamodb:BatchGetItem",  # targets.get_many (drills)
        "dynamodb:GetItem",  # restores.get
        "dynamodb:PutItem",  # restores.create
        "dynamodb:Query",  # runs.latest_good (and the watch-deadline index: restores.due)
        "dynamodb:UpdateItem",  # restores.transition/mark, targets.claim_drill_slot/record_drill
    ),
}
READS_WATCH_INDEX = frozenset({"watchdog", "restore"})  # ledger.due_watches queries the GSI

# The sources each function may put events with; a function absent here may put none.
EVENT_SOURCES: Mapping[str, tuple[str, ...]] = {
    "watchdog": (SOURCE_PIPELINE,),  # Backup Missing
    "restore": (SOURCE_PIPELINE,),  # Restore Rejected, Restore Validated
}

# What each service does with the key on the caller's behalf (and therefore what the caller needs).
KMS_FOR_LEDGER = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")  # CMK-encrypted table
KMS_FOR_SENDING = ("kms:Decrypt", "kms:GenerateDataKey")  # SQS/SNS SSE: the producer's data key
KMS_FOR_READING = ("kms:Decrypt",)  # SQS consumer, S3 GetObject of an SSE-KMS object
KMS_FOR_WRITING = ("kms:Decrypt", "kms:GenerateDataKey")  # S3 PutObject of an SSE-KMS object (its data key)
VAULT_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")  # the off-site copies (read_vault_copies)

QUEUE_CONSUME_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)


def _sid(*words: str) -> str:
    return "".join(word[:1].upper() + word[1:] for word in words)


class FunctionAccess:
    """Grants the rights of one function to its role, each as an explicit statement with a Sid."""

    def __init__(self, name: str, role: iam.IRole, *, key: kms.IKey) -> None:
        self.name = name
        self.role = role
        self._key = key
        self._region = Stack.of(role).region
        self._key_uses: dict[str, iam.PolicyStatement] = {}

    def _allow(
        self, sid: str, actions: Iterable[str], resources: Sequence[str], conditions: Mapping[str, object] | None = None
    ) -> None:
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=sid, actions=sorted(set(actions)), resources=list(resources), conditions=dict(conditions or {})
            )
        )

    def use_key_through(self, service: str, actions: Iterable[str]) -> None:
        """The key, only as ``service`` uses it on this function's behalf (one statement per service)."""
        statement = self._key_uses.get(service)
        if statement is None:
            statement = iam.PolicyStatement(
                sid=_sid("UseKeyThrough", service),
                resources=[self._key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"{service}.{self._region}.amazonaws.com"}},
            )
            self._key_uses[service] = statement
            self.role.add_to_principal_policy(statement)
        statement.add_actions(*sorted(set(actions) - set(statement.actions)))

    def ledger(self, table: dynamodb.ITable) -> None:
        """Exactly the ledger calls of this function's code (LEDGER_ACTIONS)."""
        self._allow("ReadWriteLedger", LEDGER_ACTIONS[self.name], [table.table_arn])
        if self.name in READS_WATCH_INDEX:
            self._allow("QueryWatchIndex", ["dynamodb:Query"], [f"{table.table_arn}/index/{ledger.WATCH_INDEX}"])
        self.use_key_through("dynamodb", KMS_FOR_LEDGER)

    def send_events(self, bus: events.IEventBus) -> None:
        """``events:PutEvents`` with this function's sources only (EVENT_SOURCES); nothing for the others."""
        sources = EVENT_SOURCES.get(self.name)
        if not sources:
            return
        self._allow(
            "PutPipelineEventsOnBus",
            ["events:PutEvents"],
            [bus.event_bus_arn],
            # events:source holds one value per entry: every entry must carry one of these sources
            {"ForAllValues:StringEquals": {"events:source": list(sources)}, "Null": {"events:source": "false"}},
        )

    def send_jobs(self, queues: Sequence[sqs.IQueue]) -> None:
        """Jobs onto the agents' queues (SendMessageBatch is authorised as sqs:SendMessage)."""
        if queues:
            self._allow("SendJobsToAgentQueues", ["sqs:SendMessage"], [queue.queue_arn for queue in queues])
            self.use_key_through("sqs", KMS_FOR_SENDING)

    def consume(self, queue: sqs.IQueue) -> None:
        """The function's own event queue, as its Lambda event source mapping polls it."""
        self._allow("ConsumeEventQueue", QUEUE_CONSUME_ACTIONS, [queue.queue_arn])
        self.use_key_through("sqs", KMS_FOR_READING)

    def publish(self, *topics: sns.ITopic) -> None:
        """Alerts onto the alert topic (and the chat topic, when there is one)."""
        self._allow("PublishAlerts", ["sns:Publish"], [topic.topic_arn for topic in topics])
        self.use_key_through("sns", KMS_FOR_SENDING)

    def list_subscriptions(self, topic: sns.ITopic) -> None:
        """The canary's check for subscriptions still pending confirmation (read only, this topic only)."""
        self._allow("ListAlertSubscriptions", ["sns:ListSubscriptionsByTopic"], [topic.topic_arn])

    def read_objects(self, bucket: s3.IBucket, actions: Iterable[str]) -> None:
        """Object-level actions on the backups under agents/ (no bucket-level or list permission, no delete)."""
        self._allow("ReadBackupObjects", actions, [bucket.arn_for_objects(f"{AGENT_PREFIX_ROOT}/*")])
        self.use_key_through("s3", KMS_FOR_READING)  # reading an SSE-KMS object decrypts its data key

    def write_restore_objects(self, bucket: s3.IBucket) -> None:
        """The coordinator's own objects under restores/ (a point-in-time restore's WAL index): create them (the
        bucket's default SSE-KMS key; S3 needs a data key for that) and read them back (a retried dispatch; the
        index's presigned GET is the coordinator's GetObject). Nothing under agents/ is writable this way."""
        self._allow(
            "WriteOwnRestoreObjects",
            ("s3:PutObject", "s3:GetObject"),
            [bucket.arn_for_objects(f"{RESTORE_PREFIX_ROOT}/*")],
        )
        self.use_key_through("s3", KMS_FOR_WRITING)

    def read_vault_copies(self, vault: VaultNames) -> None:
        """The off-site vault's copies (another region, usually another account): HeadObject with or without
        a version (with ChecksumMode, which needs kms:Decrypt on an SSE-KMS object), GetObject of a manifest,
        presigned GETs; ListBucket so that a copy not there yet answers 404, not 403. The vault key is used
        only through S3 in the vault's region, and only the key carrying the vault's alias: its id is not
        known here. The vault's bucket and key policies grant the same to this role's fixed name."""
        self._allow("ReadVaultCopies", VAULT_READ_ACTIONS, [vault.copies_arn])
        self._allow("ListVault", ["s3:ListBucket"], [vault.bucket_arn])
        self._allow(
            "DecryptVaultCopiesThroughS3",
            KMS_FOR_READING,
            [vault.keys_arn],
            {
                "StringEquals": {"kms:ViaService": vault.s3_service},
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": [vault.key_alias]},
            },
        )
