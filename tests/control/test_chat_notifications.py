"""Alerts for chat channels: the Chatbot custom-notification format, and the chat copy next to every alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_functions import alerts
from backup_functions.chat_format import DESCRIPTION_MAX, chat_notification, thread_id
from backup_functions.ports import SnsNotifier

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 16, 5, 0, tzinfo=UTC)


STDERR = "pg_dump: error: connection to server failed"


def _failed(target: str = "orders-pg", *, error: str = "connection refused", stderr: str = STDERR) -> alerts.Situation:
    return alerts.Situation(
        pipeline="bp", agent="db-1", target=target, since=NOW - timedelta(hours=1), now=NOW, stage="dump",
        exit_code=2, error=error, stderr_tail=stderr,
    )  # fmt: skip


def test_an_alert_becomes_a_custom_notification_chatbot_renders() -> None:
    alert = alerts.backup_failed(_failed())

    document = json.loads(chat_notification(alert, dedup_id="incident:target:orders-pg#failed:open"))

    assert (document["version"], document["source"]) == ("1.0", "custom")
    assert document["id"] == "incident:target:orders-pg#failed:open"
    content = document["content"]
    assert content["textType"] == "client-markdown"
    assert content["title"] == f":red_circle: {alert.subject}"
    assert content["description"].startswith("```\n")
    assert content["description"].endswith("pipeline bp\n```")
    assert "pg_dump: error: connection to server failed" in content["description"]
    assert content["nextSteps"][0] == "backupctl history orders-pg"
    assert content["keywords"] == ["critical", "failed", "open"]
    assert document["metadata"]["eventType"] == "failed"
    assert document["metadata"]["additionalContext"]["target"] == "orders-pg"


def test_an_incidents_open_reminder_and_all_clear_share_one_thread() -> None:
    phases = [alerts.backup_failed(_failed(), phase) for phase in ("open", "reminder", "resolved")]
    other = alerts.backup_failed(_failed("shop-db"))

    assert len({thread_id(alert) for alert in phases}) == 1
    assert thread_id(other) != thread_id(phases[0])
    resolved = json.loads(chat_notification(phases[2]))
    assert resolved["content"]["title"].startswith(":large_green_circle: ")  # a recovery is info


def test_a_long_body_is_cut_inside_the_limit_and_a_secret_never_reaches_chat() -> None:
    alert = alerts.backup_failed(_failed(error="password=hunter2", stderr="pg_dump: still failing\n" * 400))

    description = json.loads(chat_notification(alert))["content"]["description"]

    assert len(description) <= DESCRIPTION_MAX
    assert description.endswith("(cut; the e-mail has it whole)\n```")
    assert "hunter2" not in description


class RecordingSns:
    def __init__(self, failing: str | None = None) -> None:
        self.published: list[dict[str, Any]] = []
        self._failing = failing

    def publish(self, **request: Any) -> dict[str, str]:
        if request["TopicArn"] == self._failing:
            raise RuntimeError("SNS unavailable")
        self.published.append(request)
        return {"MessageId": str(len(self.published))}


def test_with_a_chat_topic_every_alert_goes_there_first_in_chat_form_then_to_the_alert_topic() -> None:
    sns = RecordingSns()
    alert = alerts.backup_failed(_failed())

    SnsNotifier(sns, "arn:alerts", "arn:chat").notify(alert, dedup_id="d-1")  # type: ignore[arg-type]

    chat, plain = sns.published
    assert chat["TopicArn"] == "arn:chat"
    assert json.loads(chat["Message"])["source"] == "custom"
    assert chat["MessageAttributes"]["severity"]["StringValue"] == "critical"
    assert (plain["TopicArn"], plain["Subject"], plain["Message"]) == ("arn:alerts", alert.subject, alert.body)


def test_a_chat_copy_that_fails_sends_nothing_so_the_retry_sends_the_page_once() -> None:
    sns = RecordingSns(failing="arn:chat")

    with pytest.raises(RuntimeError, match="SNS unavailable"):
        SnsNotifier(sns, "arn:alerts", "arn:chat").notify(alerts.backup_failed(_failed()))  # type: ignore[arg-type]

    assert sns.published == []


def test_without_chat_channels_there_is_one_publish() -> None:
    sns = RecordingSns()

    SnsNotifier(sns, "arn:alerts", "").notify(alerts.backup_failed(_failed()))  # type: ignore[arg-type]

    assert [p["TopicArn"] for p in sns.published] == ["arn:alerts"]
