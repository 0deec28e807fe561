"""The four Lambdas (dispatcher, audit, watchdog, restore coordinator), their triggers and least-privilege roles.

Each function has its own role with exactly the rights of its row in ``stacks/function_access.py``
(plus writing to its own log group and X-Ray). Event-driven functions are fed from the bus through an SQS
queue (+DLQ) with partial batch responses, so a malformed event lands in a DLQ instead of being lost or
blocking the batch; only the queue's own rule may send to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from backup_contracts import events as contract_events
from backup_contracts import naming
from backup_contracts.environment import (
    POWERTOOLS_LOG_LEVEL,
    POWERTOOLS_METRICS_NAMESPACE,
    POWERTOOLS_SERVICE_NAME,
    FunctionEnvironment,
    metrics_namespace,
)
from backup_contracts.fleet import Fleet
from stacks.agent_access import encrypted_queue
from stacks.event_bus import QueueTarget, allow_rules_to_use_key, event_pattern
from stacks.function_access import FunctionAccess
from stacks.lambda_package import FLEET_FILE_NAME
from stacks.nag import acknowledge

RUNTIME = lambda_.Runtime.PYTHON_3_14
RUNTIME_PYTHON_VERSION = "3.14"  # what pip builds the dependency wheels for; must match RUNTIME
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
FUNCTION_TIMEOUT = Duration.seconds(60)
EVENT_QUEUE_VISIBILITY = Duration.seconds(naming.EVENTS_QUEUE_VISIBILITY_TIMEOUT_S)
EVENT_QUEUE_MAX_RECEIVE_COUNT = naming.EVENTS_QUEUE_MAX_RECEIVE_COUNT
EVENT_QUEUE_NAMES = {
    "audit": naming.audit_events_queue_name,
    "restore": naming.restore_events_queue_name,
    "watchdog": naming.silence_events_queue_name,  # Silence Requested / Unsilence Requested
}
LOG_LEVEL = "INFO"

AUDIT_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAttributes",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    # Object Lock: the audit sets each verified backup's retention from its GFS tier and reads it back
    # (HeadObject shows it only with GetObjectRetention) so it never shortens one; never a governance bypass.
    "s3:GetObjectRetention",
    "s3:PutObjectRetention",
)
RESTORE_OBJECT_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")

HANDLERS = {
    "dispatcher": "backup_functions.dispatcher.handler.handler",
    "audit": "backup_functions.audit.handler.handler",
    "watchdog": "backup_functions.watchdog.handler.handler",
    "restore": "backup_functions.restore.handler.handler",
}


@dataclass(frozen=True)
class Shared:
    """Resources every function may be granted access to."""

    fleet: Fleet
    code: lambda_.Code
    key: kms.IKey
    bucket: s3.IBucket
    table: dynamodb.ITable
    bus: events.IEventBus
    topic: sns.ITopic
    agent_queues: tuple[sqs.IQueue, ...]
    chat_topic: sns.ITopic | None = None  # with chat channels: every alert again, as a Chatbot notification
    # Functions whose roles need a fixed name another stack can trust by ARN (the off-site vault's readers);
    # the others keep CloudFormation's generated names.
    role_names: Mapping[str, str] = field(default_factory=dict)


class Functions(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, shared: Shared) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        self.environment = self._environment()
        self.dlqs: dict[str, sqs.Queue] = {}
        self.functions: dict[str, lambda_.Function] = {}
        self.access: dict[str, FunctionAccess] = {}
        allow_rules_to_use_key(shared.key)  # the event queues and DLQs are encrypted with the pipeline key
        self.dispatcher = self._build_dispatcher()
        self.audit = self._build_audit()
        self.watchdog = self._build_watchdog()
        self.restore = self._build_restore()

    # --- environment -------------------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        s = self._shared
        stack = Stack.of(self)
        # FunctionEnvironment refuses a missing or unknown variable: the stack and the functions' settings
        # model (which extends it) cannot disagree.
        environment = FunctionEnvironment(
            ledger_table=s.table.table_name,
            bus_name=s.bus.event_bus_name,
            bucket_name=s.bucket.bucket_name,
            alert_topic_arn=s.topic.topic_arn,
            kms_key_arn=s.key.key_arn,
            job_queue_url_prefix=f"https://sqs.{stack.region}.{stack.url_suffix}/{stack.account}/",
            fleet_file=FLEET_FILE_NAME,
            chat_topic_arn=s.chat_topic.topic_arn if s.chat_topic is not None else "",
        ).variables()
        pipeline = s.fleet.pipeline.name
        environment |= {
            POWERTOOLS_SERVICE_NAME: pipeline,
            POWERTOOLS_METRICS_NAMESPACE: metrics_namespace(pipeline),
            POWERTOOLS_LOG_LEVEL: LOG_LEVEL,
        }
        return environment

    # --- building blocks ---------------------------------------------------------------------------
    def _function(self, name: str, description: str) -> lambda_.Function:
        scope = Construct(self, name.capitalize())
        log_group = logs.LogGroup(scope, "Logs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.RETAIN)
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            role_name=self._shared.role_names.get(name),
            description=f"{self._shared.fleet.pipeline.name} {name} function",
        )
        function = lambda_.Function(
            scope,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLERS[name],
            code=self._shared.code,
            role=role,
            environment=self.environment,
            memory_size=512,
            timeout=FUNCTION_TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
        )
        # The function writes only its own log group (instead of the AWSLambdaBasicExecutionRole managed policy).
        log_group.grant_write(role)
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Log streams are created at run time with generated names; the grant is scoped to this function's"
            " own log group.",
            applies_to=[f"Resource::<{Stack.of(self).get_logical_id(log_group.node.default_child)}.Arn>:*"],  # type: ignore[arg-type]
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "X-Ray PutTraceSegments/PutTelemetryRecords do not support resource-level permissions (active tracing).",
            applies_to=["Resource::*"],
        )
        self.functions[name] = function
        self.access[name] = FunctionAccess(name, role, key=self._shared.key)
        return function

    def _event_queue(self, name: str) -> sqs.Queue:
        """The SQS buffer between the bus and an event-driven function (+ its DLQ)."""
        scope = Construct(self, f"{name.capitalize()}Events")
        queue_name = EVENT_QUEUE_NAMES[name](self._shared.fleet.pipeline.name)
        dlq = encrypted_queue(
            scope,
            "Dlq",
            key=self._shared.key,
            queue_name=naming.events_dlq_name(queue_name),
            retention=Duration.seconds(naming.DLQ_RETENTION_S),
        )
        self.dlqs[name] = dlq
        return encrypted_queue(
            scope,
            "Queue",
            key=self._shared.key,
            queue_name=queue_name,
            visibility_timeout=EVENT_QUEUE_VISIBILITY,
            dead_letter=sqs.DeadLetterQueue(queue=dlq, max_receive_count=EVENT_QUEUE_MAX_RECEIVE_COUNT),
        )

    def _feed_from_bus(self, function: lambda_.Function, name: str, pattern: dict[str, list[str]]) -> events.Rule:
        """bus → rule → SQS queue (undeliverable events and poison messages both end in its DLQ) → function."""
        queue = self._event_queue(name)
        rule = events.Rule(
            self,
            f"{name.capitalize()}Rule",
            description=f"{name}: events from the pipeline bus",
            event_bus=self._shared.bus,
            event_pattern=event_pattern(pattern),
            targets=[QueueTarget(queue, dead_letter_queue=self.dlqs[name])],
        )
        # The mapping directly, not SqsEventSource: that one grants kms:Decrypt without kms:ViaService.
        function.add_event_source_mapping(
            "Events", event_source_arn=queue.queue_arn, batch_size=10, report_batch_item_failures=True
        )
        self.access[name].consume(queue)
        return rule

    def _logical_id(self, construct: IConstruct) -> str:
        return Stack.of(self).get_logical_id(construct.node.default_child)  # type: ignore[arg-type]

    def _grant_backup_objects(self, function: lambda_.Function, name: str, actions: tuple[str, ...]) -> None:
        """Object-level access to the backups under agents/ (no bucket-level or list permission, no delete)."""
        s = self._shared
        self.access[name].read_objects(s.bucket, actions)
        acknowledge(
            function.role,  # type: ignore[arg-type]
            "AwsSolutions-IAM5",
            "Backup object keys are generated per run (agent/target/date/run id); access is limited to"
            " object-level actions under the agents/ prefix, with no delete and no listing.",
            applies_to=[f"Resource::<{self._logical_id(s.bucket)}.Arn>/{naming.AGENT_PREFIX_ROOT}/*"],
        )

    def _alert_topics(self) -> tuple[sns.ITopic, ...]:
        """The alert topic, and the chat topic when the fleet has chat channels (every alert goes to both)."""
        s = self._shared
        return (s.topic,) if s.chat_topic is None else (s.topic, s.chat_topic)

    def _grant_common(self, name: str) -> None:
        """The ledger (exactly the calls of the function's code) and, for the senders, the bus."""
        access = self.access[name]
        access.ledger(self._shared.table)
        access.send_events(self._shared.bus)

    # --- the four functions ------------------------------------------------------------------------
    def _build_dispatcher(self) -> lambda_.Function:
        s = self._shared
        function = self._function("dispatcher", "Finds due targets and sends jobs to agent queues")
        self._grant_common("dispatcher")
        self.access["dispatcher"].send_jobs(s.agent_queues)
        events.Rule(
            self,
            "DispatcherSchedule",
            description="dispatcher tick (a missed tick is caught up by the next one)",
            schedule=events.Schedule.rate(Duration.minutes(s.fleet.pipeline.dispatcher_interval_minutes)),
            targets=[targets.LambdaFunction(function, retry_attempts=0)],
        )
        # On-demand requests are invoked asynchronously; ones that still fail after retries are kept in a DLQ.
        requests_dlq = encrypted_queue(
            Construct(self, "DispatcherRequests"), "Dlq", key=s.key, retention=Duration.seconds(naming.DLQ_RETENTION_S)
        )
        self.dlqs["dispatcher"] = requests_dlq
        acknowledge(
            requests_dlq,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the on-demand request rule's Lambda target;"
            " cdk-nag only recognises DLQs of other queues.",
        )
        events.Rule(
            self,
            "DispatcherRequestsRule",
            description="on-demand backups from the bus",
            event_bus=s.bus,
            event_pattern=event_pattern(contract_events.BACKUP_REQUEST_PATTERN),
            targets=[
                targets.LambdaFunction(
                    function, retry_attempts=2, max_event_age=Duration.hours(1), dead_letter_queue=requests_dlq
                )
            ],
        )
        return function

    def _build_audit(self) -> lambda_.Function:
        function = self._function("audit", "Turns agent events into ledger state and applies retention tags")
        self._grant_common("audit")
        # Cross-checks each backup object (HEAD: size, checksum, encryption) and applies its retention tag.
        self._grant_backup_objects(function, "audit", AUDIT_OBJECT_ACTIONS)
        self.access["audit"].publish(*self._alert_topics())
        self._feed_from_bus(function, "audit", contract_events.AUDIT_PATTERN)
        return function

    def _build_watchdog(self) -> lambda_.Function:
        s = self._shared
        function = self._function("watchdog", "Compares expected with actual runs and raises alerts")
        self._grant_common("watchdog")
        self.access["watchdog"].publish(*self._alert_topics())
        self.access["watchdog"].list_subscriptions(s.topic)  # the daily canary names unconfirmed subscriptions
        events.Rule(
            self,
            "WatchdogSchedule",
            description="watchdog tick",
            schedule=events.Schedule.rate(Duration.minutes(s.fleet.pipeline.watchdog_interval_minutes)),
            targets=[targets.LambdaFunction(function)],
        )
        # Silences: the watchdog decides what pages, so it records them (backup_functions.silence_requests).
        self._feed_from_bus(function, "watchdog", contract_events.SILENCE_PATTERN)
        return function

    def _build_restore(self) -> lambda_.Function:
        s = self._shared
        function = self._function("restore", "Validates restore requests and dispatches them to agents")
        self._grant_common("restore")
        self.access["restore"].send_jobs(s.agent_queues)
        # Signs short-lived GET URLs for exactly the object to restore: the signer holds read + kms:Decrypt.
        self._grant_backup_objects(function, "restore", RESTORE_OBJECT_ACTIONS)
        # Writes (and reads back) a point-in-time restore's WAL index under its own restores/ prefix.
        self.access["restore"].write_restore_objects(s.bucket)
        acknowledge(
            function.role,  # type: ignore[arg-type]
            "AwsSolutions-IAM5",
            "A point-in-time restore's WAL index is written at restores/<restore_id>/wal-index.json, one key per"
            " restore: object-level PutObject/GetObject under the coordinator's own restores/ prefix only.",
            applies_to=[f"Resource::<{self._logical_id(s.bucket)}.Arn>/{naming.RESTORE_PREFIX_ROOT}/*"],
        )
        self.access["restore"].publish(*self._alert_topics())
        self._feed_from_bus(function, "restore", contract_events.RESTORE_PATTERN)
        # The coordinator's own tick: starts due restore drills, expires unanswered approvals, and fails
        # restores whose agent never reported by their deadline.
        events.Rule(
            self,
            "RestoreSchedule",
            description="restore coordinator tick: drills, approval expiry, restore deadlines",
            schedule=events.Schedule.rate(Duration.minutes(s.fleet.pipeline.watchdog_interval_minutes)),
            targets=[targets.LambdaFunction(function)],
        )
        return function
