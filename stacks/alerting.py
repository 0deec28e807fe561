"""Alerting: one KMS-encrypted, TLS-only SNS topic with an e-mail subscription per configured address.

``enforce_ssl`` gives the topic its own policy (the TLS Deny), which replaces SNS's default one; the
functions publish through their identity policies, and the CloudWatch alarms of this account (DLQs,
function errors, watchdog silence) get their own statement here, or no alarm would ever reach anyone.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from backup_contracts import naming
from backup_contracts.fleet import Fleet


class Alerting(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, fleet: Fleet, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=naming.alert_topic_name(fleet.pipeline.name),
            display_name=f"{fleet.pipeline.name} alerts",
            master_key=key,
            enforce_ssl=True,
        )
        self._allow_this_accounts_alarms()
        for email in fleet.pipeline.alert_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(str(email)))

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
