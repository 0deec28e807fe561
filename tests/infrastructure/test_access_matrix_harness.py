"""The access-matrix harness itself: the template resolver refuses what it does not know, and a missing
or mismatched evaluator fails with the fix (``make install``) in its message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from access_matrix.evaluator import PACKAGE, Evaluator, EvaluatorUnavailableError, installed_version, pinned_version
from access_matrix.template import ResolvedStack, TemplateResolutionError

pytestmark = pytest.mark.infrastructure


def _template_with_role_resource(value: Any) -> dict[str, Any]:
    """A template whose one role's trust policy holds ``value`` as a statement's Resource."""
    return {
        "Resources": {
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "bus"}},
            "Rule": {"Type": "AWS::Events::Rule", "Properties": {"EventBusName": {"Ref": "Bus"}}},
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": {"Statement": [{"Resource": value}]}},
            },
        }
    }


def test_the_resolver_resolves_intrinsics_as_cloudformation_does() -> None:
    template = _template_with_role_resource(
        [
            {"Fn::GetAtt": ["Rule", "Arn"]},
            {"Fn::Sub": ["${Bus.Arn}/${AWS::Region}/${Name}/${!Literal}", {"Name": "n"}]},
            {"Fn::Sub": "${Bus}-${AWS::AccountId}"},
            {"Fn::Join": [":", [{"Ref": "AWS::Partition"}, {"Ref": "Rule"}]]},
        ]
    )
    resolved = ResolvedStack.from_template(template, stack_name="stack")
    (statement,) = resolved.resource_policies[resolved.arns["Role"]]["Statement"]
    assert statement["Resource"] == [
        "arn:aws:events:us-east-1:123456789012:rule/bus/stack-Rule",
        "arn:aws:events:us-east-1:123456789012:event-bus/bus/us-east-1/n/${Literal}",
        "bus-123456789012",
        "aws:stack-Rule",
    ]
    assert resolved.roles["Role"].session_arn() == "arn:aws:sts::123456789012:assumed-role/stack-Role/access-matrix"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::If": ["IsProd", "a", "b"]}, "intrinsic Fn::If is not supported"),
        ({"Fn::GetAtt": ["Bus", "Policy"]}, "Fn::GetAtt Bus.Policy"),
        ({"Ref": "Missing"}, "'Missing', which is not a resource"),
    ],
)
def test_the_resolver_refuses_what_it_does_not_know(value: Any, message: str) -> None:
    with pytest.raises(TemplateResolutionError, match=message):
        ResolvedStack.from_template(_template_with_role_resource(value), stack_name="stack")


def test_a_policy_bearing_resource_the_harness_does_not_evaluate_is_an_error() -> None:
    template = {"Resources": {"BusPolicy": {"Type": "AWS::Events::EventBusPolicy", "Properties": {}}}}
    with pytest.raises(TemplateResolutionError, match="does not evaluate yet"):
        ResolvedStack.from_template(template, stack_name="stack")


def test_the_installed_evaluator_is_the_pinned_dev_dependency() -> None:
    assert installed_version() == pinned_version(), f"{PACKAGE}: run `make install`"


def test_a_missing_evaluator_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(f'{{"devDependencies": {{"{PACKAGE}": "0.1.173"}}}}')
    with pytest.raises(EvaluatorUnavailableError, match=r"is not installed .* Fix: run `make install`"):
        Evaluator(repo=tmp_path)


def test_a_mismatched_evaluator_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(f'{{"devDependencies": {{"{PACKAGE}": "9.9.9"}}}}')
    installed = tmp_path / "node_modules" / PACKAGE
    installed.mkdir(parents=True)
    (installed / "package.json").write_text('{"version": "0.0.1"}')
    expected = r"has @cloud-copilot/iam-simulate 0\.0\.1, package.json pins 9\.9\.9\. Fix: run `make install`"
    with pytest.raises(EvaluatorUnavailableError, match=expected):
        Evaluator(repo=tmp_path)
