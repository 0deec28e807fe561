"""The composed stack (synthesized once per session from fleet.yaml): functions, triggers, IAM, alarms, outputs."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from backup_contracts import events
from backup_contracts.fleet import Fleet
from backup_functions.settings import FunctionSettings
from stacks.functions import HANDLERS, RUNTIME

pytestmark = pytest.mark.infrastructure

POWERTOOLS_VARIABLES = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}


def _functions(synthesized: Any) -> dict[str, dict[str, Any]]:
    return {
        name: synthesized.resources[synthesized.logical_id(function)]
        for name, function in synthesized.stack.functions.functions.items()
    }


def _rules(synthesized: Any) -> list[dict[str, Any]]:
    return [r["Properties"] for r in synthesized.of_type("AWS::Events::Rule").values()]


def _arn_of(synthesized: Any, construct: Any) -> dict[str, Any]:
    return {"Fn::GetAtt": [synthesized.logical_id(construct), "Arn"]}


def _statements(synthesized: Any) -> list[tuple[str, dict[str, Any]]]:
    """(logical id of the role or policy, statement) for every IAM statement in the template."""
    found = []
    for logical_id, resource in synthesized.resources.items():
        if resource["Type"] == "AWS::IAM::Policy":
            documents = [resource["Properties"]["PolicyDocument"]]
        elif resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        else:
            continue
        found += [(logical_id, s) for d in documents for s in d["Statement"]]
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


# --- functions -------------------------------------------------------------------------------------------
def test_four_functions_with_the_expected_handlers(synthesized: Any) -> None:
    functions = _functions(synthesized)
    assert {name: f["Properties"]["Handler"] for name, f in functions.items()} == {
        "dispatcher": "backup_functions.dispatcher.handler.handler",
        "audit": "backup_functions.audit.handler.handler",
        "watchdog": "backup_functions.watchdog.handler.handler",
        "restore": "backup_functions.restore.handler.handler",
    }
    assert HANDLERS.keys() == functions.keys()


def test_functions_run_the_newest_python_on_arm64_with_active_tracing(synthesized: Any) -> None:
    for function in _functions(synthesized).values():
        properties = function["Properties"]
        assert properties["Runtime"] == RUNTIME.name == "python3.14"
        assert properties["Architectures"] == ["arm64"]
        assert properties["TracingConfig"] == {"Mode": "Active"}


def test_each_function_has_its_own_role_without_managed_policies(synthesized: Any) -> None:
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in _functions(synthesized).values()]
    assert len(set(roles)) == 4
    for role in roles:
        assert "ManagedPolicyArns" not in synthesized.resources[role]["Properties"]


def test_each_function_logs_to_its_own_log_group_with_retention(synthesized: Any) -> None:
    groups = [f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in _functions(synthesized).values()]
    assert len(set(groups)) == 4
    for group in groups:
        assert synthesized.resources[group]["Properties"]["RetentionInDays"] == 90


def test_function_environment_is_exactly_the_settings_model_plus_powertools(synthesized: Any, fleet: Fleet) -> None:
    expected = {name.upper() for name in FunctionSettings.model_fields} | POWERTOOLS_VARIABLES
    for function in _functions(synthesized).values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert set(variables) == expected
        assert variables["FLEET_FILE"] == "fleet.json"
        assert variables["POWERTOOLS_SERVICE_NAME"] == fleet.pipeline.name
        assert variables["JOB_QUEUE_URL_PREFIX"] == {
            "Fn::Join": [
                "",
                [
                    "https://sqs.",
                    {"Ref": "AWS::Region"},
                    ".",
                    {"Ref": "AWS::URLSuffix"},
                    "/",
                    {"Ref": "AWS::AccountId"},
                    "/",
                ],
            ]
        }


def test_function_environment_points_at_the_stack_resources(synthesized: Any) -> None:
    stack = synthesized.stack
    variables = next(iter(_functions(synthesized).values()))["Properties"]["Environment"]["Variables"]
    assert variables["LEDGER_TABLE"] == {"Ref": synthesized.logical_id(stack.ledger.table)}
    assert variables["BUS_NAME"] == {"Ref": synthesized.logical_id(stack.events.bus)}
    assert variables["BUCKET_NAME"] == {"Ref": synthesized.logical_id(stack.storage.bucket)}
    assert variables["ALERT_TOPIC_ARN"] == {"Ref": synthesized.logical_id(stack.alerting.topic)}
    assert variables["KMS_KEY_ARN"] == _arn_of(synthesized, stack.storage.key)


# --- triggers --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "interval"),
    [
        ("dispatcher", "dispatcher_interval_minutes"),
        ("watchdog", "watchdog_interval_minutes"),
        ("restore", "watchdog_interval_minutes"),  # drills, approval expiry, restore deadlines
    ],
)
def test_scheduled_functions_run_at_the_configured_rate(
    synthesized: Any, fleet: Fleet, name: str, interval: str
) -> None:
    function_arn = _arn_of(synthesized, synthesized.stack.functions.functions[name])
    minutes = getattr(fleet.pipeline, interval)
    schedules = [
        r for r in _rules(synthesized) if r.get("ScheduleExpression") and r["Targets"][0]["Arn"] == function_arn
    ]
    assert [r["ScheduleExpression"] for r in schedules] == [f"rate({minutes} minutes)"]


def test_dispatcher_receives_backup_requests_from_the_bus_with_a_dlq(synthesized: Any) -> None:
    stack = synthesized.stack
    [rule] = [r for r in _rules(synthesized) if r.get("EventPattern") == events.BACKUP_REQUEST_PATTERN]
    assert rule["EventBusName"] == {"Ref": synthesized.logical_id(stack.events.bus)}
    [target] = rule["Targets"]
    assert target["Arn"] == _arn_of(synthesized, stack.functions.dispatcher)
    assert target["DeadLetterConfig"] == {"Arn": _arn_of(synthesized, stack.functions.dlqs["dispatcher"])}


@pytest.mark.parametrize(
    ("name", "pattern"),
    [("audit", events.AUDIT_PATTERN), ("restore", events.RESTORE_PATTERN), ("watchdog", events.SILENCE_PATTERN)],
)
def test_event_driven_functions_are_fed_through_an_sqs_queue_with_partial_batch_failures(
    synthesized: Any, name: str, pattern: dict[str, Any]
) -> None:
    stack = synthesized.stack
    [rule] = [r for r in _rules(synthesized) if r.get("EventPattern") == pattern]
    assert rule["EventBusName"] == {"Ref": synthesized.logical_id(stack.events.bus)}
    queue_arn = rule["Targets"][0]["Arn"]
    queue_id = queue_arn["Fn::GetAtt"][0]
    queue = synthesized.resources[queue_id]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == _arn_of(synthesized, stack.functions.dlqs[name])
    assert queue["KmsMasterKeyId"] == _arn_of(synthesized, stack.storage.key)
    [mapping] = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == queue_arn
    ]
    assert mapping["FunctionName"] == {"Ref": synthesized.logical_id(stack.functions.functions[name])}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_every_queue_in_the_stack_is_kms_encrypted_and_every_non_dlq_has_a_capped_dlq(synthesized: Any) -> None:
    key_arn = _arn_of(synthesized, synthesized.stack.storage.key)
    queues = synthesized.of_type("AWS::SQS::Queue")
    dlq_ids = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    dlq_ids.add(synthesized.logical_id(synthesized.stack.functions.dlqs["dispatcher"]))  # the rule target's DLQ
    for logical_id, queue in queues.items():
        assert queue["Properties"]["KmsMasterKeyId"] == key_arn, logical_id
        if logical_id not in dlq_ids:
            assert 1 <= queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] <= 5, logical_id


# --- IAM across the whole stack ----------------------------------------------------------------------------
def test_nothing_in_the_stack_may_delete_backups(synthesized: Any) -> None:
    for owner, statement in _statements(synthesized):
        if statement["Effect"] != "Allow":
            continue
        for action in _actions(statement):
            assert not action.startswith("s3:Delete"), (owner, action)
            assert action not in ("s3:*", "*"), (owner, action)


def test_agent_roles_in_the_stack_are_scoped_to_their_own_queue_and_prefix(synthesized: Any, fleet: Fleet) -> None:
    for name, agent in synthesized.stack.agent_access.agents.items():
        role = synthesized.resources[synthesized.logical_id(agent.role)]["Properties"]
        statements = {s["Sid"]: s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]}
        assert statements["TakeJobsFromOwnQueue"]["Resource"] == _arn_of(synthesized, agent.queue)
        assert statements["WriteOwnPrefixOnly"]["Resource"]["Fn::Join"][1][1] == f"/agents/{name}/*"
    assert set(synthesized.stack.agent_access.agents) == {a.name for a in fleet.agents}


# --- monitoring ------------------------------------------------------------------------------------------
def _alarms(synthesized: Any) -> list[dict[str, Any]]:
    return [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]


def test_every_dlq_has_an_alarm_to_the_alert_topic(synthesized: Any) -> None:
    topic = {"Ref": synthesized.logical_id(synthesized.stack.alerting.topic)}
    dlqs = [agent.dlq for agent in synthesized.stack.agent_access.agents.values()]
    dlqs += list(synthesized.stack.functions.dlqs.values())
    for dlq in dlqs:
        queue_name = {"Fn::GetAtt": [synthesized.logical_id(dlq), "QueueName"]}
        [alarm] = [
            a
            for a in _alarms(synthesized)
            if a.get("MetricName") == "ApproximateNumberOfMessagesVisible" and a["Dimensions"][0]["Value"] == queue_name
        ]
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == [topic]


def test_every_function_has_an_errors_alarm(synthesized: Any) -> None:
    for function in synthesized.stack.functions.functions.values():
        name = {"Ref": synthesized.logical_id(function)}
        assert [
            a for a in _alarms(synthesized) if a.get("MetricName") == "Errors" and a["Dimensions"][0]["Value"] == name
        ]


def test_watchdog_not_running_alarm_treats_missing_data_as_breaching(synthesized: Any, fleet: Fleet) -> None:
    watchdog = {"Ref": synthesized.logical_id(synthesized.stack.functions.watchdog)}
    [alarm] = [
        a
        for a in _alarms(synthesized)
        if a.get("MetricName") == "Invocations" and a["Dimensions"][0]["Value"] == watchdog
    ]
    assert alarm["Period"] == 2 * fleet.pipeline.watchdog_interval_minutes * 60
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["AlarmActions"] == [{"Ref": synthesized.logical_id(synthesized.stack.alerting.topic)}]


def test_dashboard_shows_the_powertools_metrics(synthesized: Any, fleet: Fleet) -> None:
    [dashboard] = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    body = "".join(part for part in dashboard["Properties"]["DashboardBody"]["Fn::Join"][1] if isinstance(part, str))
    name = fleet.pipeline.name
    for metric in ("BackupsSucceeded", "BackupsFailed", "BytesStored", "OverdueTargets"):
        assert f'["{name}","{metric}","service","{name}"' in body, metric


# --- outputs ---------------------------------------------------------------------------------------------
def test_outputs_give_users_what_they_need(template: Template, fleet: Fleet) -> None:
    outputs = template.to_json()["Outputs"]
    expected = {"BucketName", "BusName", "KeyArn", "LedgerTable", "AlertTopicArn"}
    for agent in fleet.agents:
        ident = "".join(part.capitalize() for part in agent.name.split("-"))
        expected |= {f"Agent{ident}QueueUrl", f"Agent{ident}RoleArn", f"Agent{ident}HostTag"}
    assert expected <= set(outputs)
    agent = fleet.agents[0]
    ident = "".join(part.capitalize() for part in agent.name.split("-"))
    assert outputs[f"Agent{ident}HostTag"]["Value"] == f"backup-pipeline-agent={fleet.pipeline.name}/{agent.name}"


def test_resource_names_are_the_shared_ones_the_local_pipeline_and_cli_use(template: Any, fleet: Any) -> None:
    """One definition of each name (backup_contracts.naming): the stack, `backupctl` defaults and the
    local pipeline must agree, or a CLI pointed at a deployment would look in the wrong place."""
    from backup_contracts import naming

    pipeline = fleet.pipeline.name
    tables = template.find_resources("AWS::DynamoDB::Table")
    assert [t["Properties"]["TableName"] for t in tables.values()] == [naming.ledger_table_name(pipeline)]
    topics = template.find_resources("AWS::SNS::Topic")
    assert [t["Properties"]["TopicName"] for t in topics.values()] == [naming.alert_topic_name(pipeline)]
    buses = template.find_resources("AWS::Events::EventBus")
    assert [b["Properties"]["Name"] for b in buses.values()] == [naming.event_bus_name(pipeline)]
    queue_names = {q["Properties"].get("QueueName") for q in template.find_resources("AWS::SQS::Queue").values()}
    expected = {naming.audit_events_queue_name(pipeline), naming.restore_events_queue_name(pipeline)}
    expected |= {naming.events_dlq_name(name) for name in list(expected)}
    for agent in fleet.agents:
        expected |= {naming.job_queue_name(pipeline, agent.name), naming.job_dlq_name(pipeline, agent.name)}
    assert expected <= queue_names
    audit_queue = next(
        q
        for q in template.find_resources("AWS::SQS::Queue").values()
        if q["Properties"].get("QueueName") == naming.audit_events_queue_name(pipeline)
    )
    assert audit_queue["Properties"]["VisibilityTimeout"] == naming.EVENTS_QUEUE_VISIBILITY_TIMEOUT_S
    assert audit_queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == naming.EVENTS_QUEUE_MAX_RECEIVE_COUNT
