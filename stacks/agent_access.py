"""Agent access: per agent, its job queue (+DLQ) and one IAM role that may do only what the agent needs.

The role may: receive/delete/change-visibility/get-attributes on its own queue; create (and abort or list
the parts of its multipart uploads) objects under ``agents/<agent>/`` only — never tag, overwrite, read,
delete or write anywhere else (restores read through presigned URLs the coordinator signs); use
the key only through S3 (encrypt/decrypt for multipart uploads) and SQS (decrypt jobs);
and put events on the pipeline bus with its own ``source`` ``backup.agent.<agent>``. No managed policies.

Trust: principals of this account that carry the principal tag ``backup-pipeline-agent`` =
``<pipeline>/<agent>`` (``aws:PrincipalTag``) — the host's instance-profile or Roles Anywhere role,
tagged by an administrator and granted ``sts:AssumeRole`` on this role (see docs/deploy.md). Granting
``sts:AssumeRole`` alone is not enough, so a role with a broad ``sts:AssumeRole *`` (a CI role, an
admin's) cannot become an agent, and a host tagged for one agent cannot assume another agent's role.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from backup_contracts import naming
from backup_contracts.fleet import Fleet, FleetConfigError
from stacks.nag import acknowledge

AGENT_QUEUE_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)
# No s3:PutObjectTagging: retention tags are set by the audit after it verified the object, never by a host
# (retagging a monthly backup as daily would let lifecycle expire it). Overwrites are denied by the bucket
# policy (Storage.deny_overwrites_by): an agent creates an object only with If-None-Match.
AGENT_OBJECT_ACTIONS = (
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
AGENT_S3_KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
AGENT_SQS_KMS_ACTIONS = ("kms:Decrypt",)
SQS_QUEUE_NAME_MAX = 80
AGENT_TRUST_TAG = "backup-pipeline-agent"  # the principal tag a host's role must carry to assume an agent role


def agent_trust_tag_value(pipeline: str, agent: str) -> str:
    """The value of AGENT_TRUST_TAG that lets a host assume ``agent``'s role (unique per pipeline and agent)."""
    return f"{pipeline}/{agent}"


@dataclass(frozen=True)
class AgentResources:
    name: str
    queue: sqs.Queue
    dlq: sqs.Queue
    role: iam.Role


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    queue_name: str | None = None,
    visibility_timeout: Duration | None = None,
    retention: Duration | None = None,
    dead_letter: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """An SQS queue with this pipeline's defaults: KMS with the pipeline key, TLS only."""
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        data_key_reuse=Duration.minutes(15),
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        retention_period=retention,
        dead_letter_queue=dead_letter,
    )


class AgentAccess(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        fleet: Fleet,
        key: kms.IKey,
        bucket: s3.IBucket,
        bus: events.IEventBus,
    ) -> None:
        super().__init__(scope, construct_id)
        pipeline = fleet.pipeline.name
        self.agents: dict[str, AgentResources] = {}
        for agent in fleet.agents:
            longest = naming.job_dlq_name(pipeline, agent.name)
            if len(longest) > SQS_QUEUE_NAME_MAX:
                raise FleetConfigError(
                    f"agent {agent.name!r}: its queue name {longest!r} has {len(longest)} characters but SQS allows"
                    f" {SQS_QUEUE_NAME_MAX}. Fix: shorten pipeline.name or the agent name by"
                    f" {len(longest) - SQS_QUEUE_NAME_MAX} characters"
                )
            scope_ = Construct(self, agent.name)
            dlq = encrypted_queue(
                scope_,
                "Dlq",
                key=key,
                queue_name=naming.job_dlq_name(pipeline, agent.name),
                retention=Duration.seconds(naming.DLQ_RETENTION_S),
            )
            queue = encrypted_queue(
                scope_,
                "Jobs",
                key=key,
                queue_name=naming.job_queue_name(pipeline, agent.name),
                visibility_timeout=Duration.seconds(naming.JOB_QUEUE_VISIBILITY_TIMEOUT_S),
                retention=Duration.seconds(naming.JOB_QUEUE_RETENTION_S),
                dead_letter=sqs.DeadLetterQueue(queue=dlq, max_receive_count=naming.JOB_QUEUE_MAX_RECEIVE_COUNT),
            )
            role = self._build_role(scope_, agent.name, pipeline=pipeline, queue=queue, key=key, bucket=bucket, bus=bus)
            self.agents[agent.name] = AgentResources(name=agent.name, queue=queue, dlq=dlq, role=role)

    @staticmethod
    def _build_role(
        scope: Construct,
        agent: str,
        *,
        pipeline: str,
        queue: sqs.IQueue,
        key: kms.IKey,
        bucket: s3.IBucket,
        bus: events.IEventBus,
    ) -> iam.Role:
        region = Stack.of(scope).region
        prefix = naming.agent_prefix(agent)
        document = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="TakeJobsFromOwnQueue",
                    actions=list(AGENT_QUEUE_ACTIONS),
                    resources=[queue.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteOwnPrefixOnly",
                    actions=list(AGENT_OBJECT_ACTIONS),
                    resources=[bucket.arn_for_objects(f"{prefix}*")],
                ),
                iam.PolicyStatement(
                    sid="UseKeyThroughS3",
                    actions=list(AGENT_S3_KMS_ACTIONS),
                    resources=[key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="DecryptJobsThroughSqs",
                    actions=list(AGENT_SQS_KMS_ACTIONS),
                    resources=[key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="PutAgentEventsOnBus",
                    actions=["events:PutEvents"],
                    resources=[bus.event_bus_arn],
                    # events:source is multivalued (one per entry): every entry must carry this agent's own
                    # source, and a request without one is not an agent's
                    conditions={
                        "ForAllValues:StringEquals": {"events:source": naming.agent_event_source(agent)},
                        "Null": {"events:source": "false"},
                    },
                ),
            ]
        )
        role = iam.Role(
            scope,
            "Role",
            description=f"{pipeline} agent {agent}: jobs from its queue, writes under {prefix} only, no delete",
            assumed_by=iam.AccountRootPrincipal().with_conditions(
                {"StringEquals": {f"aws:PrincipalTag/{AGENT_TRUST_TAG}": agent_trust_tag_value(pipeline, agent)}}
            ),
            inline_policies={"agent": document},
            max_session_duration=Duration.hours(12),
        )
        bucket_id = Stack.of(scope).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            f"The agent writes one object per run under keys it generates; the wildcard is confined to its own"
            f" prefix {prefix} and the actions exclude delete and listing.",
            applies_to=[f"Resource::<{bucket_id}.Arn>/{prefix}*"],
        )
        return role
