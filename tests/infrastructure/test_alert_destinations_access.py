"""The policies the fleet's webhooks and chat channels add, decided by the access matrix's evaluator.

The shipped fleet declares no destination, so the access matrix (test_access_matrix.py) never sees these
statements: here the app is synthesized for a fleet with a webhook and a chat channel and iam-simulate
decides who may write to a webhook's dead-letter queue, use the key for it, and what the chat role may do.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from access_matrix.evaluator import Evaluator, EvaluatorUnavailableError, Request
from access_matrix.template import ACCOUNT, PARTITION, REGION, ResolvedStack
from aws_cdk.assertions import Template

from backup_contracts.fleet import load_fleet
from stacks.app_factory import build_app, stack_id

pytestmark = pytest.mark.infrastructure

REPO = Path(__file__).resolve().parents[2]
ALERTS = {
    "webhooks": [{"name": "pager", "url_secret": "backup/pager-url"}],
    "chat": [{"name": "ops-slack", "slack": {"workspace_id": "T0123ABC", "channel_id": "C0123ABC"}}],
}
FOREIGN = "999999999999"


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResolvedStack, dict[str, Any]]:
    spec = yaml.safe_load((REPO / "fleet.yaml").read_text(encoding="utf-8"))
    spec["pipeline"]["alerts"] = ALERTS
    fleet_file = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    app = build_app(fleet_file, outdir=tmp_path_factory.mktemp("cdk.out"), bundle_dependencies=False)
    stack = app.node.find_child(stack_id(load_fleet(fleet_file)))
    template = Template.from_stack(stack).to_json()  # type: ignore[arg-type]
    return ResolvedStack.from_template(template, stack_name=stack.stack_name), template["Resources"]


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    try:
        return Evaluator()
    except EvaluatorUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


def _arn(resolved: ResolvedStack, resources: dict[str, Any], cfn_type: str, contains: str) -> str:
    [logical_id] = [k for k, v in resources.items() if v["Type"] == cfn_type and contains in k]
    return resolved.arns[logical_id]


def _decide(evaluator: Evaluator, request: Request) -> bool:
    (verdict,) = evaluator.evaluate([request])
    assert not verdict.ignored_context_keys, verdict.ignored_context_keys
    return verdict.allowed


def _as_service(resolved: ResolvedStack, action: str, resource: str, **context: str) -> Request:
    return Request(
        principal="sns.amazonaws.com",
        action=action,
        resource=resource,
        resource_account=ACCOUNT,
        context={"aws:SecureTransport": "true", **context},
        identity_policies=(),
        resource_policy=resolved.resource_policy(resource),
    )


def test_only_the_alert_topic_may_dead_letter_into_a_webhooks_queue(resolved: Any, evaluator: Evaluator) -> None:
    stack, resources = resolved
    dlq = _arn(stack, resources, "AWS::SQS::Queue", "WebhookPager")
    topic = _arn(stack, resources, "AWS::SNS::Topic", "AlertingTopic")
    other_topic = f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:another-topic"

    def send(source: str) -> bool:
        request = _as_service(stack, "sqs:SendMessage", dlq, **{"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT})
        return _decide(evaluator, request)

    assert send(topic) is True
    assert send(other_topic) is False


def test_sns_may_use_the_key_for_dead_letters_of_this_account_only(resolved: Any, evaluator: Evaluator) -> None:
    stack, resources = resolved
    key = _arn(stack, resources, "AWS::KMS::Key", "")

    def data_key(account: str) -> bool:
        return _decide(evaluator, _as_service(stack, "kms:GenerateDataKey", key, **{"aws:SourceAccount": account}))

    assert data_key(ACCOUNT) is True
    assert data_key(FOREIGN) is False


def test_the_chat_channels_role_can_do_nothing_in_the_account(resolved: Any, evaluator: Evaluator) -> None:
    stack, resources = resolved
    roles = [role for logical_id, role in stack.roles.items() if "Chat" in logical_id]
    assert roles, "no chat role in the template"
    bucket = _arn(stack, resources, "AWS::S3::Bucket", "Backups")
    key = _arn(stack, resources, "AWS::KMS::Key", "")
    for role in roles:
        for action, resource in [("s3:GetObject", f"{bucket}/agents/x"), ("kms:Decrypt", key)]:
            request = Request(
                principal=role.session_arn(),
                action=action,
                resource=resource,
                resource_account=ACCOUNT,
                context={"aws:SecureTransport": "true", "aws:PrincipalArn": role.arn, "aws:PrincipalAccount": ACCOUNT},
                identity_policies=role.identity_policies,
                resource_policy=stack.resource_policy(resource),
            )
            assert _decide(evaluator, request) is False, f"{role.logical_id} may {action}"


def _publish(stack: ResolvedStack, role_hint: str, topic: str) -> Request:
    [role] = [role for logical_id, role in stack.roles.items() if role_hint in logical_id]
    return Request(
        principal=role.session_arn(),
        action="sns:Publish",
        resource=topic,
        resource_account=ACCOUNT,
        context={"aws:SecureTransport": "true", "aws:PrincipalArn": role.arn, "aws:PrincipalAccount": ACCOUNT},
        identity_policies=role.identity_policies,
        resource_policy=stack.resource_policy(topic),
    )


@pytest.mark.parametrize("function", ["Audit", "Watchdog", "Restore"])
def test_the_functions_that_alert_publish_the_chat_copy_and_no_agent_can(
    resolved: Any, evaluator: Evaluator, function: str
) -> None:
    stack, resources = resolved
    chat = _arn(stack, resources, "AWS::SNS::Topic", "ChatTopic")

    assert _decide(evaluator, _publish(stack, f"Functions{function}Role", chat)) is True
    assert _decide(evaluator, _publish(stack, "AgentAccess", chat)) is False
    assert _decide(evaluator, _publish(stack, "FunctionsDispatcherRole", chat)) is False


def test_chat_channels_hear_both_topics_and_the_functions_know_the_chat_topic(resolved: Any) -> None:
    _, resources = resolved
    topics = {logical_id for logical_id, resource in resources.items() if resource["Type"] == "AWS::SNS::Topic"}
    [chat_topic] = [t for t in topics if "ChatTopic" in t]
    [alert_topic] = [t for t in topics if "AlertingTopic" in t]
    [channel] = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Chatbot::SlackChannelConfiguration"]
    functions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    alerting = [f for f in functions if "CHAT_TOPIC_ARN" in f["Environment"]["Variables"]]

    assert channel["SnsTopicArns"] == [{"Ref": alert_topic}, {"Ref": chat_topic}]
    assert len(alerting) == 4  # every function reads one environment; three of them publish
    assert all(f["Environment"]["Variables"]["CHAT_TOPIC_ARN"] == {"Ref": chat_topic} for f in alerting)
    assert resources[chat_topic]["Properties"]["KmsMasterKeyId"]


def test_the_chat_topic_refuses_a_publish_without_tls_even_from_a_function_that_may_publish(
    resolved: Any, evaluator: Evaluator
) -> None:
    stack, resources = resolved
    chat = _arn(stack, resources, "AWS::SNS::Topic", "ChatTopic")
    request = _publish(stack, "FunctionsWatchdogRole", chat)
    plain = dataclasses.replace(request, context={**request.context, "aws:SecureTransport": "false"})

    assert _decide(evaluator, request) is True
    assert _decide(evaluator, plain) is False
