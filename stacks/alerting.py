"""Alerting: one KMS-encrypted, TLS-only SNS topic with an e-mail subscription per configured address."""

from __future__ import annotations

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
        for email in fleet.pipeline.alert_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(str(email)))
