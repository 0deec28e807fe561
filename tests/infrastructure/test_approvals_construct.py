"""The approvals URL in the template: an IAM-authenticated URL on the restore function, a callers policy that
allows no direct invocation, and resource-policy grants only to the accounts the fleet's approvers live in.
(What those grants decide is evaluated by the access matrix, rows approver-* and *-calls-approvals-url.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from backup_contracts.fleet import Fleet
from stacks.approvals import RestoreApprovals, approver_accounts, callers_policy_name

pytestmark = pytest.mark.infrastructure

OTHER = "210987654321"


def _of_type(resources: dict[str, Any], cfn_type: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources.values() if r["Type"] == cfn_type]


def test_the_restore_function_has_one_url_and_it_is_iam_authenticated(synthesized: Any) -> None:
    restore = synthesized.logical_id(synthesized.stack.functions.restore)
    [url] = _of_type(synthesized.resources, "AWS::Lambda::Url")
    assert url == {"AuthType": "AWS_IAM", "TargetFunctionArn": {"Fn::GetAtt": [restore, "Arn"]}}


def test_no_permission_lets_anyone_in_or_skips_iam(synthesized: Any) -> None:
    for permission in _of_type(synthesized.resources, "AWS::Lambda::Permission"):
        assert permission["Principal"] != "*"
        if permission["Action"] == "lambda:InvokeFunctionUrl":
            assert permission["FunctionUrlAuthType"] == "AWS_IAM"
        elif not str(permission["Principal"]).endswith(".amazonaws.com"):
            # an account may invoke the function only through the URL, never directly
            assert permission["InvokedViaFunctionUrl"] is True, permission


def test_the_callers_policy_allows_the_url_and_no_direct_invocation(synthesized: Any, fleet: Fleet) -> None:
    restore = synthesized.logical_id(synthesized.stack.functions.restore)
    [policy] = _of_type(synthesized.resources, "AWS::IAM::ManagedPolicy")
    assert policy["ManagedPolicyName"] == callers_policy_name(fleet.pipeline.name)
    assert "Roles" not in policy  # attached by the cloud team to the people's roles, not by the stack
    function = {"Fn::GetAtt": [restore, "Arn"]}
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Action": "lambda:InvokeFunctionUrl",
            "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
            "Effect": "Allow",
            "Resource": function,
            "Sid": "InvokeApprovalsUrl",
        },
        {
            "Action": "lambda:InvokeFunction",
            "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}},
            "Effect": "Allow",
            "Resource": function,
            "Sid": "InvokeOnlyThroughTheUrl",
        },
    ]


def test_the_outputs_give_backupctl_its_url_and_the_cloud_team_the_policy(template: Template) -> None:
    outputs = template.to_json()["Outputs"]
    assert outputs["ApprovalsUrl"]["Value"]["Fn::GetAtt"][1] == "FunctionUrl"
    assert "Ref" in outputs["ApprovalsCallersPolicyArn"]["Value"]


def _build(stack: Stack, fleet: Fleet) -> dict[str, Any]:
    function = lambda_.Function(
        stack,
        "Restore",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="handler.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
    )
    RestoreApprovals(stack, "Approvals", fleet=fleet, function=function)
    resources: dict[str, Any] = Template.from_stack(stack).to_json()["Resources"]
    return resources


def test_every_account_an_approver_lives_in_may_call_the_url(
    bare_stack: Stack, fleet_with: Callable[..., Fleet], fleet: Fleet
) -> None:
    raw = fleet.model_dump(mode="json")
    raw["agents"][0]["targets"][2]["approvers"] = [f"arn:aws:sts::{OTHER}:assumed-role/Approver/*"]  # orders-pg
    two_accounts = fleet_with(agents=raw["agents"])
    assert approver_accounts(two_accounts) == sorted(["123456789012", OTHER])

    permissions = _of_type(_build(bare_stack, two_accounts), "AWS::Lambda::Permission")

    granted = {(p["Principal"], p["Action"]) for p in permissions}
    assert granted == {
        (account, action)
        for account in ("123456789012", OTHER)
        for action in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction")
    }


def test_a_fleet_without_protected_targets_grants_no_account(
    bare_stack: Stack, fleet_with: Callable[..., Fleet], fleet: Fleet
) -> None:
    raw = fleet.model_dump(mode="json")
    for target in raw["agents"][0]["targets"]:
        target["protected"] = False
    unprotected = fleet_with(agents=raw["agents"], pipeline={"approvers": []})

    resources = _build(bare_stack, unprotected)

    assert _of_type(resources, "AWS::Lambda::Permission") == []
    assert [u["AuthType"] for u in _of_type(resources, "AWS::Lambda::Url")] == ["AWS_IAM"]
