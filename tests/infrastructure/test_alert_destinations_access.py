"""The policies the fleet's webhooks and chat channels add, decided by the access matrix's evaluator.

The shipped fleet declares no destination, so the access matrix (test_access_matrix.py) never sees these
statements: here the app is synthesized for a fleet with a webhook and a chat channel and iam-simulate
decides who may write to a webhook's dead-letter queue, use the key for it, and what the chat role may do.
"""

from __future__ import annotations

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
    topic = _arn(stack, resources, "AWS::SNS::Topic", "Alert")
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
