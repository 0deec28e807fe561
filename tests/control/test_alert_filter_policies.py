"""Fleet destination filters match the attributes the code really sends: moto applies an SNS subscription's
FilterPolicy to SQS subscriptions, so an SQS queue subscribed with a fleet filter's policy receives exactly
the alerts that destination would (real alerts from ``alerts.build`` and the canary, sent by SnsNotifier)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from backup_contracts.fleet_alerts import FILTER_ATTRIBUTES, AlertFilter
from backup_functions import alerts, canary
from backup_functions.ports import SnsNotifier

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 4, 9, 2, tzinfo=UTC)
REGION = "eu-central-1"


def _situation(target: str | None = "orders", agent: str = "db-1") -> alerts.Situation:
    return alerts.Situation(
        pipeline="backup-pipeline", agent=agent, target=target, since=NOW - timedelta(hours=3), now=NOW,
        rpo=timedelta(hours=26), error="pg_dump: connection refused", exit_code=1, stage="dump",
    )  # fmt: skip


def _every_alert() -> list[alerts.Alert]:
    built = [alerts.build(kind, _situation(), phase) for kind in alerts.BUILDERS for phase in ("open", "resolved")]
    built.append(alerts.build(alerts.AGENT_SILENT, _situation(target=None, agent="db-2")))
    built.append(canary.canary_alert("backup-pipeline", NOW, {}))
    built.append(canary.canary_alert("backup-pipeline", NOW, {"email": 1}))
    return built


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        yield {"sns": sns, "sqs": sqs, "topic": sns.create_topic(Name="alerts")["TopicArn"]}


def _delivered(aws: dict[str, Any], alert_filter: AlertFilter | None) -> list[str]:
    """Subjects an SQS queue subscribed with ``alert_filter``'s policy receives when every alert is sent."""
    sns, sqs = aws["sns"], aws["sqs"]
    url = sqs.create_queue(QueueName=f"dest-{len(sqs.list_queues().get('QueueUrls', []))}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {"FilterPolicy": json.dumps(alert_filter.policy())} if alert_filter else {}
    sns.subscribe(TopicArn=aws["topic"], Protocol="sqs", Endpoint=arn, Attributes=attributes)
    notifier = SnsNotifier(sns, aws["topic"])
    for alert in _every_alert():
        notifier.notify(alert, dedup_id="entry-1")
    subjects = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            subjects.append(json.loads(message["Body"])["Subject"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return sorted(subjects)


def _subjects(predicate: Any) -> list[str]:
    return sorted(alert.subject for alert in _every_alert() if predicate(alert))


def test_every_alert_carries_each_filter_attribute_it_has_a_value_for() -> None:
    for alert in _every_alert():
        sent = alert.message_attributes()
        assert {"severity", "kind", "phase"} <= set(sent), alert.subject
        assert alert.kind == canary.CANARY or "agent" in sent, alert.subject  # the canary is about no agent
        assert sent["severity"]["StringValue"] in ("info", "warning", "critical")
        assert set(sent) - {"alert", "dedup_id"} <= set(FILTER_ATTRIBUTES)


def test_a_critical_only_webhook_receives_open_failures_and_no_recovery_or_canary(aws: dict[str, Any]) -> None:
    got = _delivered(aws, AlertFilter(severity=["critical"]))
    assert got == _subjects(lambda a: a.severity == "critical")
    assert got
    assert not any("RESOLVED" in s or "CANARY" in s or "NOT STARTED" in s for s in got)


def test_a_filter_on_target_and_kind_receives_only_that_targets_failures(aws: dict[str, Any]) -> None:
    got = _delivered(aws, AlertFilter(kind=["failed"], target=["orders"]))
    assert got == _subjects(lambda a: a.kind == "failed" and a.facts.get("target") == "orders")
    assert len(got) == 2  # open and resolved


def test_an_agent_filter_receives_that_agents_alerts_only(aws: dict[str, Any]) -> None:
    got = _delivered(aws, AlertFilter(agent=["db-2"]))
    assert got == _subjects(lambda a: a.facts.get("agent") == "db-2")
    assert len(got) == 1


def test_a_canary_with_unconfirmed_subscriptions_reaches_a_warning_filter(aws: dict[str, Any]) -> None:
    got = _delivered(aws, AlertFilter(severity=["warning"], kind=["canary"]))
    assert got == [canary.canary_alert("backup-pipeline", NOW, {"email": 1}).subject]


def test_no_filter_receives_every_alert(aws: dict[str, Any]) -> None:
    assert _delivered(aws, None) == _subjects(lambda a: True)
