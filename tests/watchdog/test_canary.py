"""The alert-path canary: one synthetic alert a day at its hour, a warning naming unconfirmed subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber
from wd_env import make_fleet

from backup_contracts.fleet import Fleet
from backup_functions import canary
from backup_functions.alerts import Alert
from backup_functions.ports import SnsSubscriptions

pytestmark = pytest.mark.unit

TOPIC = "arn:aws:sns:eu-central-1:123456789012:alerts"


def _fleet(hour: int = 9, enabled: bool = True, interval: int = 5) -> Fleet:
    raw = make_fleet().model_dump(mode="json")
    raw["pipeline"] |= {
        "watchdog_interval_minutes": interval,
        "alerts": {"canary": {"hour_utc": hour, "enabled": enabled}},
    }
    return Fleet.model_validate(raw)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[Alert, str | None]] = []

    def notify(self, alert: Alert, *, dedup_id: str | None = None) -> str:
        self.sent.append((alert, dedup_id))
        return f"m-{len(self.sent)}"


class Pending:
    def __init__(self, pending: dict[str, int]) -> None:
        self.pending = pending
        self.calls = 0

    def pending_confirmation(self) -> dict[str, int]:
        self.calls += 1
        return self.pending


def test_exactly_one_tick_a_day_sends_the_canary() -> None:
    fleet, notifier, subscriptions = _fleet(), Recorder(), Pending({})
    start = datetime(2026, 3, 4, 0, 3, 17, tzinfo=UTC)
    for tick in range(24 * 12 * 2):  # two days of 5-minute ticks, not aligned to the hour
        canary.send_if_due(
            start + timedelta(minutes=5 * tick), fleet=fleet, notifier=notifier, subscriptions=subscriptions
        )
    assert [alert.facts["at"][:13] for alert, _ in notifier.sent] == ["2026-03-04T09", "2026-03-05T09"]
    assert [dedup for _, dedup in notifier.sent] == ["canary-2026-03-04", "canary-2026-03-05"]
    assert subscriptions.calls == 2  # the subscriptions are listed only at the canary's tick


def test_a_healthy_path_gets_an_info_canary() -> None:
    notifier = Recorder()
    report = canary.send_if_due(
        datetime(2026, 3, 4, 9, 1, tzinfo=UTC), fleet=_fleet(), notifier=notifier, subscriptions=Pending({})
    )
    ((alert, _),) = notifier.sent
    assert report.sent
    assert (alert.kind, alert.severity) == ("canary", "info")
    assert alert.message_attributes()["severity"]["StringValue"] == "info"
    assert "no action needed" in alert.subject


def test_unconfirmed_subscriptions_turn_the_canary_into_a_warning_that_names_them() -> None:
    notifier = Recorder()
    report = canary.send_if_due(
        datetime(2026, 3, 4, 9, 1, tzinfo=UTC), fleet=_fleet(), notifier=notifier, subscriptions=Pending({"email": 2})
    )
    ((alert, _),) = notifier.sent
    assert report.pending == {"email": 2}
    assert alert.severity == "warning"
    assert "2 subscription(s) not confirmed (2 email)" in alert.subject
    assert "click" in alert.body


def test_a_disabled_canary_is_never_sent() -> None:
    notifier = Recorder()
    canary.send_if_due(
        datetime(2026, 3, 4, 9, 1, tzinfo=UTC),
        fleet=_fleet(enabled=False),
        notifier=notifier,
        subscriptions=Pending({}),
    )
    assert notifier.sent == []


def test_pending_subscriptions_are_counted_per_protocol_from_list_subscriptions_by_topic() -> None:
    sns = boto3.client("sns", region_name="eu-central-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(sns)
    page = [
        {"SubscriptionArn": "PendingConfirmation", "Protocol": "email", "Endpoint": "a@example.com", "TopicArn": TOPIC},
        {"SubscriptionArn": f"{TOPIC}:1", "Protocol": "email", "Endpoint": "b@example.com", "TopicArn": TOPIC},
    ]
    stubber.add_response("list_subscriptions_by_topic", {"Subscriptions": page, "NextToken": "t"}, {"TopicArn": TOPIC})
    page2 = [
        {"SubscriptionArn": "PendingConfirmation", "Protocol": "https", "Endpoint": "https://secret", "TopicArn": TOPIC}
    ]
    stubber.add_response("list_subscriptions_by_topic", {"Subscriptions": page2}, {"TopicArn": TOPIC, "NextToken": "t"})
    with stubber:
        assert SnsSubscriptions(sns, TOPIC).pending_confirmation() == {"email": 1, "https": 1}
    stubber.assert_no_pending_responses()


def test_the_canary_never_carries_an_endpoint() -> None:
    alert = canary.canary_alert("p", datetime(2026, 3, 4, 9, 1, tzinfo=UTC), {"https": 1})
    assert "https://" not in alert.body
    assert "Endpoint" not in str(alert.facts)
