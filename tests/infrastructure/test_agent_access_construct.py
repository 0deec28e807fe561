"""Agent access alone: per agent, an encrypted queue + DLQ and a role that can do only what the agent needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from backup_contracts import naming
from backup_contracts.fleet import Fleet, FleetConfigError
from stacks.agent_access import AgentAccess

pytestmark = pytest.mark.infrastructure

AGENTS = [
    {"name": "alpha", "targets": [{"name": "a-db", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "26h"}]},
    {"name": "beta", "targets": [{"name": "b-db", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "26h"}]},
]


class Built:
    def __init__(self, stack: Stack, fleet: Fleet) -> None:
        self.stack = stack
        self.fleet = fleet
        self.key = kms.Key(stack, "Key")
        self.bucket = s3.Bucket(stack, "Bucket")
        self.bus = events.EventBus(stack, "Bus")
        self.access = AgentAccess(stack, "AgentAccess", fleet=fleet, key=self.key, bucket=self.bucket, bus=self.bus)
        self.template = Template.from_stack(stack)
        self.resources: dict[str, Any] = self.template.to_json()["Resources"]

    def id_of(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)

    def role(self, agent: str) -> dict[str, Any]:
        return self.resources[self.id_of(self.access.agents[agent].role)]["Properties"]

    def statements(self, agent: str) -> dict[str, dict[str, Any]]:
        policies = self.role(agent)["Policies"]
        return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"]}


@pytest.fixture(scope="module")
def built(fleet_with: Callable[..., Fleet]) -> Built:
    from aws_cdk import App

    from stacks.app_factory import cdk_json_context

    return Built(Stack(App(context=cdk_json_context()), "Bare"), fleet_with(agents=AGENTS))


def test_an_agent_whose_queue_name_is_too_long_is_a_clear_config_error(
    bare_stack: Stack, fleet_with: Callable[..., Fleet]
) -> None:
    long_agent = "a" * 40
    fleet = fleet_with(
        pipeline={"name": "p" * 40},
        agents=[{**AGENTS[0], "name": long_agent}],
    )
    with pytest.raises(FleetConfigError, match=r"has 90 characters but SQS allows 80\. Fix: shorten pipeline.name"):
        AgentAccess(
            bare_stack,
            "AgentAccess",
            fleet=fleet,
            key=kms.Key(bare_stack, "Key"),
            bucket=s3.Bucket(bare_stack, "Bucket"),
            bus=events.EventBus(bare_stack, "Bus"),
        )


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_each_agent_gets_a_named_kms_queue_with_a_dlq(built: Built) -> None:
    for agent in ("alpha", "beta"):
        queue = built.resources[built.id_of(built.access.agents[agent].queue)]["Properties"]
        dlq_id = built.id_of(built.access.agents[agent].dlq)
        dlq = built.resources[dlq_id]["Properties"]
        assert queue["QueueName"] == naming.job_queue_name("backup-pipeline", agent)
        assert dlq["QueueName"] == naming.job_dlq_name("backup-pipeline", agent)
        key_arn = {"Fn::GetAtt": [built.id_of(built.key), "Arn"]}
        assert queue["KmsMasterKeyId"] == key_arn
        assert dlq["KmsMasterKeyId"] == key_arn
        assert queue["VisibilityTimeout"] == naming.JOB_QUEUE_VISIBILITY_TIMEOUT_S
        assert queue["MessageRetentionPeriod"] == naming.JOB_QUEUE_RETENTION_S
        assert dlq["MessageRetentionPeriod"] == naming.DLQ_RETENTION_S
        assert queue["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
            "maxReceiveCount": naming.JOB_QUEUE_MAX_RECEIVE_COUNT,
        }


def test_every_agent_queue_denies_requests_without_tls(built: Built) -> None:
    policies = built.template.find_resources("AWS::SQS::QueuePolicy")
    assert len(policies) == 4  # two queues and two DLQs
    for policy in policies.values():
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )


def test_agent_role_is_trusted_only_by_principals_tagged_for_that_agent_and_has_no_managed_policies(
    built: Built,
) -> None:
    role = built.role("alpha")
    assert "ManagedPolicyArns" not in role
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Principal"] == {
        "AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}
    }
    pipeline = built.fleet.pipeline.name
    assert trust["Condition"] == {"StringEquals": {"aws:PrincipalTag/backup-pipeline-agent": f"{pipeline}/alpha"}}
    assert not built.template.find_resources("AWS::IAM::Policy")  # everything is inline on the role


def test_agent_role_has_exactly_the_five_capabilities(built: Built) -> None:
    assert set(built.statements("alpha")) == {
        "TakeJobsFromOwnQueue",
        "WriteOwnPrefixOnly",
        "UseKeyThroughS3",
        "DecryptJobsThroughSqs",
        "PutAgentEventsOnBus",
    }
    assert all(s["Effect"] == "Allow" for s in built.statements("alpha").values())


def test_agent_role_takes_jobs_only_from_its_own_queue(built: Built) -> None:
    statement = built.statements("alpha")["TakeJobsFromOwnQueue"]
    assert sorted(_actions(statement)) == [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ]
    assert statement["Resource"] == {"Fn::GetAtt": [built.id_of(built.access.agents["alpha"].queue), "Arn"]}
    beta_queue = built.id_of(built.access.agents["beta"].queue)
    assert beta_queue not in str(built.role("alpha"))


def test_agent_role_writes_only_under_its_own_prefix_and_never_tags_reads_or_deletes(built: Built) -> None:
    statement = built.statements("alpha")["WriteOwnPrefixOnly"]
    assert sorted(_actions(statement)) == [
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
    ]
    assert statement["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [built.id_of(built.bucket), "Arn"]}, f"/{naming.agent_prefix('alpha')}*"]]
    }
    assert "agents/beta/" not in str(built.role("alpha"))


def test_no_agent_role_may_delete_or_use_s3_wildcards(built: Built) -> None:
    for agent in ("alpha", "beta"):
        for statement in built.statements(agent).values():
            for action in _actions(statement):
                assert not action.startswith("s3:Delete"), (agent, action)
                assert "*" not in action, (agent, action)


@pytest.mark.parametrize(
    ("sid", "actions", "service"),
    [
        ("UseKeyThroughS3", ["kms:Decrypt", "kms:GenerateDataKey"], "s3"),
        ("DecryptJobsThroughSqs", ["kms:Decrypt"], "sqs"),
    ],
)
def test_agent_role_uses_the_key_only_through_s3_and_sqs(
    built: Built, sid: str, actions: list[str], service: str
) -> None:
    statement = built.statements("alpha")[sid]
    assert sorted(_actions(statement)) == actions
    assert statement["Resource"] == {"Fn::GetAtt": [built.id_of(built.key), "Arn"]}
    assert statement["Condition"] == {
        "StringEquals": {
            "kms:ViaService": {"Fn::Join": ["", [f"{service}.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
        }
    }


def test_agent_role_puts_events_only_as_backup_agent_on_the_bus(built: Built) -> None:
    statement = built.statements("alpha")["PutAgentEventsOnBus"]
    assert _actions(statement) == ["events:PutEvents"]
    assert statement["Resource"] == {"Fn::GetAtt": [built.id_of(built.bus), "Arn"]}
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"events:source": naming.agent_event_source("alpha")},
        "Null": {"events:source": "false"},
    }
