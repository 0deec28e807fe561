"""Alerting: one KMS-encrypted, TLS-only SNS topic with an e-mail subscription per configured address,
the fleet's other destinations (``stacks/alert_destinations.py``: webhooks, chat) and an alarm when SNS
fails to deliver a notification to any of them (``NumberOfNotificationsFailed``).

``enforce_ssl`` gives the topic its own policy (the TLS Deny), which replaces SNS's default one; the
functions publish through their identity policies, and the CloudWatch alarms of this account (DLQs,
function errors, watchdog silence) get their own statement here, or no alarm would ever reach anyone.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from backup_contracts import naming
from backup_contracts.fleet import Fleet
from stacks.alert_destinations import AlertDestinations


class Alerting(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, fleet: Fleet, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        pipeline = fleet.pipeline.name
        self.topic = self._topic("Topic", naming.alert_topic_name(pipeline), f"{pipeline} alerts", key)
        self._allow_this_accounts_alarms()
        # Chatbot renders only AWS events and custom notifications: with chat channels, every alert is also
        # published to this topic in that format (functions/backup_functions/chat_format.py).
        self.chat_topic: sns.Topic | None = None
        if fleet.pipeline.alerts.chat:
            self.chat_topic = self._topic(
                "ChatTopic", naming.chat_topic_name(pipeline), f"{pipeline} alerts for chat", key
            )
        for email in fleet.pipeline.alert_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(str(email)))
        self.destinations = AlertDestinations(
            self,
            "Destinations",
            pipeline=fleet.pipeline.name,
            routing=fleet.pipeline.alerts,
            topic=self.topic,
            chat_topic=self.chat_topic,
            key=key,
        )
        self.delivery_failed = self._alarm_on_failed_deliveries(fleet.pipeline.name)

    def _topic(self, construct_id: str, name: str, display_name: str, key: kms.IKey) -> sns.Topic:
        """A KMS-encrypted topic that refuses anything but TLS."""
        return sns.Topic(
            self, construct_id, topic_name=name, display_name=display_name, master_key=key, enforce_ssl=True
        )

    def _alarm_on_failed_deliveries(self, pipeline: str) -> cloudwatch.Alarm:
        """A subscriber SNS could not deliver to (webhook down after its retries, chat or e-mail refused).
        It goes to the same topic: the destinations still working see that another one is not."""
        alarm = cloudwatch.Alarm(
            self,
            "NotificationsFailed",
            metric=self.topic.metric_number_of_notifications_failed(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{pipeline}: SNS failed to deliver alerts to a subscriber of the alert topic."
            " Check the webhook DLQs and the topic's delivery status logs; see docs/oncall.md#where-alerts-go.",
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        return alarm

    def _allow_this_accounts_alarms(self) -> None:
        stack = Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
                    },
                },
            )
        )
