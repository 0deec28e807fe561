"""Alert destinations besides e-mail, as the fleet's ``pipeline.alerts`` declares them.

- **Webhooks**: one SNS HTTPS subscription each, with a delivery policy (retries with exponential backoff
  for about 40 minutes, then the message goes to the subscription's dead-letter queue — a KMS-encrypted
  SQS queue that SNS alone may send to, for this topic only, alarmed by Monitoring) and the entry's
  ``filter`` as the subscription's FilterPolicy (on message attributes). A URL with a credential never
  stands in the template: ``url_secret`` becomes a ``{{resolve:secretsmanager:...}}`` dynamic reference.
- **Chat**: an AWS Chatbot Slack or Microsoft Teams channel configuration on the alert topic (CloudWatch
  alarms, which Chatbot renders) and the chat topic (every alert as a custom notification). Its channel role
  has no policy at all (notifications need none) and its guardrail denies every action, so nobody in the
  channel can run AWS commands through it; a user role is required on top of that.
"""

from __future__ import annotations

from urllib.parse import quote

from aws_cdk import Duration, SecretValue, Stack
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from backup_contracts import naming
from backup_contracts.fleet_alerts import AlertFilter, AlertRouting, ChatChannel, Webhook
from stacks.agent_access import encrypted_queue
from stacks.nag import acknowledge

CHATBOT_SERVICE = "chatbot.amazonaws.com"
SNS_SERVICE = "sns.amazonaws.com"
# SNS's retries: 3 at once, 2 after 5 s, 10 backing off to 60 s, 35 every 60 s (about 40 minutes in all)
WEBHOOK_RETRIES = sns.HealthyRetryPolicy(
    num_no_delay_retries=3,
    min_delay_target=Duration.seconds(5),
    num_min_delay_retries=2,
    num_retries=50,
    max_delay_target=Duration.seconds(60),
    num_max_delay_retries=35,
    backoff_function=sns.BackoffFunction.EXPONENTIAL,
)
WEBHOOK_MAX_RECEIVES_PER_SECOND = 5


def filter_policy(alert_filter: AlertFilter | None) -> dict[str, sns.SubscriptionFilter] | None:
    if alert_filter is None:
        return None
    return {
        name: sns.SubscriptionFilter.string_filter(allowlist=values) for name, values in alert_filter.policy().items()
    }


def webhook_endpoint(webhook: Webhook) -> str:
    """The URL as it stands in the template: the plain one, or a Secrets Manager dynamic reference."""
    if webhook.url is not None:
        return webhook.url
    return SecretValue.secrets_manager(str(webhook.url_secret)).unsafe_unwrap()  # resolved by CloudFormation


def teams_channel_id(channel_id: str) -> str:
    """CloudFormation wants the Teams channel id URL-encoded (``19%3A...%40thread.tacv2``), as it appears in the
    channel's link; Teams shows it decoded (``19:...@thread.tacv2``). Either is accepted in the fleet."""
    return channel_id if "%" in channel_id else quote(channel_id, safe="")


def _ident(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


class AlertDestinations(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline: str,
        routing: AlertRouting,
        topic: sns.Topic,
        key: kms.IKey,
        chat_topic: sns.Topic | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._pipeline = pipeline
        self._topic = topic
        self._chat_topic = chat_topic
        self._key = key
        self.webhook_dlqs: dict[str, sqs.Queue] = {}
        self.subscriptions: dict[str, sns.Subscription] = {}
        self.chat_roles: dict[str, iam.Role] = {}
        if routing.webhooks:
            self._allow_sns_to_use_key()
        for webhook in routing.webhooks:
            self._build_webhook(webhook)
        if routing.chat:
            self.guardrail = self._build_guardrail()
        for channel in routing.chat:
            self._build_chat(channel)

    def _allow_sns_to_use_key(self) -> None:
        """SNS encrypts what it moves to a subscription's DLQ with the pipeline key: only for topics of this
        account (``aws:SourceArn`` would make the key depend on the topic encrypted with it: a cycle)."""
        self._key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsTopicsToUseTheKeyForSubscriptionDlqs",
                principals=[iam.ServicePrincipal(SNS_SERVICE)],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )

    def _build_webhook(self, webhook: Webhook) -> None:
        scope = Construct(self, f"Webhook{_ident(webhook.name)}")
        dlq = encrypted_queue(scope, "Dlq", key=self._key, retention=Duration.seconds(naming.DLQ_RETENTION_S))
        acknowledge(
            dlq,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of a webhook's SNS subscription; cdk-nag only"
            " recognises DLQs of other queues.",
        )
        # the L2 subscription gives the DLQ a queue policy: sns.amazonaws.com, SendMessage, SourceArn = topic
        self.subscriptions[webhook.name] = sns.Subscription(
            scope,
            "Subscription",
            topic=self._topic,
            protocol=sns.SubscriptionProtocol.HTTPS,
            endpoint=webhook_endpoint(webhook),
            raw_message_delivery=webhook.raw_message,
            filter_policy=filter_policy(webhook.filter),
            dead_letter_queue=dlq,
            delivery_policy=sns.DeliveryPolicy(
                healthy_retry_policy=WEBHOOK_RETRIES,
                throttle_policy=sns.ThrottlePolicy(max_receives_per_second=WEBHOOK_MAX_RECEIVES_PER_SECOND),
                request_policy=sns.RequestPolicy(header_content_type="application/json"),
            ),
        )
        self.webhook_dlqs[webhook.name] = dlq

    def _build_guardrail(self) -> iam.ManagedPolicy:
        return iam.ManagedPolicy(
            self,
            "ChatGuardrail",
            description=f"{self._pipeline}: chat channels may run no AWS action (alerts only)",
            statements=[
                iam.PolicyStatement(
                    sid="ChatChannelsRunNoAwsActions", effect=iam.Effect.DENY, actions=["*"], resources=["*"]
                )
            ],
        )

    def _build_chat(self, channel: ChatChannel) -> None:
        scope = Construct(self, f"Chat{_ident(channel.name)}")
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal(CHATBOT_SERVICE),
            description=f"{self._pipeline} chat channel {channel.name}: notifications only, no policy",
        )
        self.chat_roles[channel.name] = role
        common = {
            "configuration_name": f"{self._pipeline}-{channel.name}"[:128],
            "iam_role_arn": role.role_arn,
            "sns_topic_arns": [t.topic_arn for t in (self._topic, self._chat_topic) if t is not None],
            "guardrail_policies": [self.guardrail.managed_policy_arn],
            "logging_level": "ERROR",
            "user_role_required": True,
        }
        if channel.slack is not None:
            chatbot.CfnSlackChannelConfiguration(
                scope,
                "Slack",
                slack_workspace_id=channel.slack.workspace_id,
                slack_channel_id=channel.slack.channel_id,
                **common,  # type: ignore[arg-type]
            )
        elif channel.teams is not None:
            chatbot.CfnMicrosoftTeamsChannelConfiguration(
                scope,
                "Teams",
                team_id=channel.teams.team_id,
                teams_channel_id=teams_channel_id(channel.teams.channel_id),
                teams_tenant_id=channel.teams.tenant_id,
                **common,  # type: ignore[arg-type]
            )
