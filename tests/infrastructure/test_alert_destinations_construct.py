"""The fleet's webhooks and chat channels, synthesized: HTTPS subscriptions with retries, a KMS-encrypted DLQ and
the fleet filter as FilterPolicy; Chatbot channels with a policy-less role and a deny-all guardrail; no secret in
the template; an alarm when SNS fails to deliver."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from aws_cdk import Stack
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from backup_contracts.fleet import Fleet
from stacks.alerting import Alerting

pytestmark = pytest.mark.infrastructure

ALERTS = {
    "webhooks": [
        {"name": "pager", "url_secret": "backup/pager-url", "filter": {"severity": ["critical"]}},
        {"name": "tickets", "url": "https://tickets.example.com/backup-alerts"},
    ],
    "chat": [
        {"name": "ops-slack", "slack": {"workspace_id": "T0123ABC", "channel_id": "C0123ABC"}},
        {
            "name": "ops-teams",
            "teams": {
                "team_id": "0a1b2c3d-0000-4000-8000-000000000001",
                "channel_id": "19:abc@thread.tacv2",
                "tenant_id": "0a1b2c3d-0000-4000-8000-000000000002",
            },
        },
    ],
}


@pytest.fixture
def template(bare_stack: Stack, fleet_with: Callable[..., Fleet]) -> Template:
    fleet = fleet_with(pipeline={"alerts": ALERTS})
    Alerting(bare_stack, "Alerting", fleet=fleet, key=kms.Key(bare_stack, "Key"))
    return Template.from_stack(bare_stack)


def _https(template: Template) -> dict[str, dict]:
    subs = template.find_resources("AWS::SNS::Subscription", {"Properties": {"Protocol": "https"}})
    return {json.dumps(s["Properties"]["Endpoint"]): s["Properties"] for s in subs.values()}


def test_a_webhook_url_secret_is_a_dynamic_reference_never_a_value(template: Template) -> None:
    endpoints = set(_https(template))
    assert json.dumps("{{resolve:secretsmanager:backup/pager-url:SecretString:::}}") in endpoints
    assert json.dumps("https://tickets.example.com/backup-alerts") in endpoints


def test_a_webhook_filter_becomes_the_subscriptions_filter_policy(template: Template) -> None:
    pager = _https(template)[json.dumps("{{resolve:secretsmanager:backup/pager-url:SecretString:::}}")]
    assert pager["FilterPolicy"] == {"severity": ["critical"]}
    assert "FilterPolicy" not in _https(template)[json.dumps("https://tickets.example.com/backup-alerts")]


def test_every_webhook_retries_then_dead_letters_into_a_kms_encrypted_queue(template: Template) -> None:
    queues = template.find_resources("AWS::SQS::Queue")
    (key_id,) = template.find_resources("AWS::KMS::Key")
    for props in _https(template).values():
        retry = props["DeliveryPolicy"]["healthyRetryPolicy"]
        assert retry["numRetries"] >= 10
        assert retry["backoffFunction"].lower() == "exponential"
        dlq_id = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert queues[dlq_id]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert len(queues) == 2


def test_only_sns_for_this_topic_may_send_to_a_webhook_dlq(template: Template) -> None:
    policies = template.find_resources("AWS::SQS::QueuePolicy")
    allows = [
        statement
        for policy in policies.values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]
    assert len(allows) == 2
    for statement in allows:
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert "aws:SourceArn" in statement["Condition"]["ArnEquals"]


def test_chat_channels_subscribe_the_topic_with_a_policy_less_role_and_a_deny_all_guardrail(
    template: Template,
) -> None:
    slack = template.find_resources("AWS::Chatbot::SlackChannelConfiguration")
    teams = template.find_resources("AWS::Chatbot::MicrosoftTeamsChannelConfiguration")
    assert len(slack) == len(teams) == 1
    guardrail_id, guardrail = next(iter(template.find_resources("AWS::IAM::ManagedPolicy").items()))
    assert guardrail["Properties"]["PolicyDocument"]["Statement"] == [
        {"Sid": "ChatChannelsRunNoAwsActions", "Effect": "Deny", "Action": "*", "Resource": "*"}
    ]
    roles = template.find_resources("AWS::IAM::Role")
    for config in (*slack.values(), *teams.values()):
        props = config["Properties"]
        assert props["GuardrailPolicies"] == [{"Ref": guardrail_id}]
        assert props["UserRoleRequired"] is True
        assert len(props["SnsTopicArns"]) == 2  # the alert topic (alarms) and the chat topic (every alert)
        role = roles[props["IamRoleArn"]["Fn::GetAtt"][0]]["Properties"]
        assert "Policies" not in role
        assert "ManagedPolicyArns" not in role
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "chatbot.amazonaws.com"}
    assert not template.find_resources("AWS::IAM::Policy")  # nobody gained a right
    # CloudFormation takes the Teams channel id URL-encoded (19%3A...%40thread.tacv2); the fleet may give either
    assert next(iter(teams.values()))["Properties"]["TeamsChannelId"] == "19%3Aabc%40thread.tacv2"


def test_failed_notifications_raise_an_alarm_to_the_topic(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "NumberOfNotificationsFailed", "Namespace": "AWS/SNS", "Threshold": 1, "Statistic": "Sum"},
    )


def test_no_destination_no_extra_resource(bare_stack: Stack, fleet: Fleet) -> None:
    Alerting(bare_stack, "Alerting", fleet=fleet, key=kms.Key(bare_stack, "Key"))
    template = Template.from_stack(bare_stack)
    template.resource_count_is("AWS::SQS::Queue", 0)
    template.resource_count_is("AWS::Chatbot::SlackChannelConfiguration", 0)
    template.resource_count_is("AWS::SNS::Subscription", 0)
