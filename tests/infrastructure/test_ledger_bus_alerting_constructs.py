"""Ledger, event bus and alerting constructs alone in a bare Stack."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aws_cdk import Stack
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template

from backup_contracts import ledger
from backup_contracts.fleet import Fleet
from backup_contracts.naming import event_bus_name
from stacks.alerting import Alerting
from stacks.event_bus import EventBus
from stacks.ledger import Ledger

pytestmark = pytest.mark.infrastructure


def _key_id(stack: Stack, key: kms.Key) -> str:
    return stack.get_logical_id(key.node.default_child)  # type: ignore[arg-type]


def test_ledger_table_keys_billing_pitr_kms_ttl_and_retention(bare_stack: Stack) -> None:
    key = kms.Key(bare_stack, "Key")
    Ledger(bare_stack, "Ledger", pipeline="backup-pipeline", key=key)
    template = Template.from_stack(bare_stack)
    template.resource_count_is("AWS::DynamoDB::Table", 1)
    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": Match.object_like(
                {
                    "KeySchema": [
                        {"AttributeName": ledger.PK, "KeyType": "HASH"},
                        {"AttributeName": ledger.SK, "KeyType": "RANGE"},
                    ],
                    "BillingMode": "PAY_PER_REQUEST",
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "SSESpecification": {
                        "SSEEnabled": True,
                        "SSEType": "KMS",
                        "KMSMasterKeyId": {"Fn::GetAtt": [_key_id(bare_stack, key), "Arn"]},
                    },
                    "TimeToLiveSpecification": {"AttributeName": ledger.TTL_ATTRIBUTE, "Enabled": True},
                }
            ),
            "DeletionPolicy": "Retain",
        },
    )


def test_ledger_has_the_watch_deadline_index_projecting_all(bare_stack: Stack) -> None:
    Ledger(bare_stack, "Ledger", pipeline="backup-pipeline", key=kms.Key(bare_stack, "Key"))
    table = next(iter(Template.from_stack(bare_stack).find_resources("AWS::DynamoDB::Table").values()))
    assert table["Properties"]["GlobalSecondaryIndexes"] == [
        {
            "IndexName": ledger.WATCH_INDEX,
            "KeySchema": [
                {"AttributeName": ledger.WATCH_SHARD, "KeyType": "HASH"},
                {"AttributeName": ledger.WATCH_DEADLINE, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table["Properties"]["AttributeDefinitions"]}
    assert attributes == {ledger.PK: "S", ledger.SK: "S", ledger.WATCH_SHARD: "S", ledger.WATCH_DEADLINE: "S"}


def test_event_bus_has_the_shared_name_and_an_archive(bare_stack: Stack) -> None:
    EventBus(bare_stack, "Events", pipeline="my-pipe")
    template = Template.from_stack(bare_stack)
    template.has_resource_properties("AWS::Events::EventBus", {"Name": event_bus_name("my-pipe")})
    template.has_resource_properties("AWS::Events::Archive", {"RetentionDays": 30})


def test_alert_topic_is_kms_encrypted_and_tls_only(bare_stack: Stack, fleet: Fleet) -> None:
    key = kms.Key(bare_stack, "Key")
    Alerting(bare_stack, "Alerting", fleet=fleet, key=key)
    template = Template.from_stack(bare_stack)
    template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [_key_id(bare_stack, key), "Arn"]}}
    )
    policy = next(iter(template.find_resources("AWS::SNS::TopicPolicy").values()))
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_only_this_accounts_cloudwatch_alarms_may_publish_to_the_alert_topic(bare_stack: Stack, fleet: Fleet) -> None:
    # the topic's own policy (enforce_ssl) replaces SNS's default one: without this grant no alarm is delivered
    Alerting(bare_stack, "Alerting", fleet=fleet, key=kms.Key(bare_stack, "Key"))
    policy = next(iter(Template.from_stack(bare_stack).find_resources("AWS::SNS::TopicPolicy").values()))
    statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    alarms = statements["AllowThisAccountsAlarmsToPublish"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == "sns:Publish"
    assert alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert set(alarms["Condition"]["ArnLike"]) == {"aws:SourceArn"}


def test_alert_topic_subscribes_every_configured_email(bare_stack: Stack, fleet_with: Callable[..., Fleet]) -> None:
    fleet = fleet_with(pipeline={"alert_emails": ["oncall@example.com", "backup-team@example.org"]})
    Alerting(bare_stack, "Alerting", fleet=fleet, key=kms.Key(bare_stack, "Key"))
    subscriptions = Template.from_stack(bare_stack).find_resources("AWS::SNS::Subscription")
    assert sorted((s["Properties"]["Protocol"], s["Properties"]["Endpoint"]) for s in subscriptions.values()) == [
        ("email", "backup-team@example.org"),
        ("email", "oncall@example.com"),
    ]


def test_no_subscription_without_configured_emails(bare_stack: Stack, fleet: Fleet) -> None:
    assert fleet.pipeline.alert_emails == []
    Alerting(bare_stack, "Alerting", fleet=fleet, key=kms.Key(bare_stack, "Key"))
    Template.from_stack(bare_stack).resource_count_is("AWS::SNS::Subscription", 0)
