"""The alert-path canary: once a day a synthetic alert (kind ``canary``) that every destination must receive.

The watchdog sends it at the first tick of ``pipeline.alerts.canary.hour_utc`` (ticks are
``watchdog_interval_minutes`` apart, so exactly one falls in ``[HH:00, HH:00 + interval)``). Before it
does, it lists the topic's subscriptions (``sns:ListSubscriptionsByTopic``): subscriptions still
``PendingConfirmation`` (an e-mail address that never clicked the link, a webhook that never answered
SNS's confirmation) are named by protocol in the canary — which then has severity ``warning`` instead of
``info`` — logged, and counted as the ``UnconfirmedSubscriptions`` metric. Endpoints are never logged or
put in the message (a webhook URL may be a credential).

A day without a canary in a destination means that path is broken: see docs/oncall.md#the-canary.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from backup_contracts.fleet import Fleet
from backup_contracts.formatting import format_time
from backup_functions.alerts import CANARY, Alert

__all__ = ["CANARY", "CanaryReport", "Subscriptions", "canary_alert", "due", "pending_of", "send_if_due"]

UNCONFIRMED_SUBSCRIPTIONS = "UnconfirmedSubscriptions"
PENDING = "PendingConfirmation"


class Subscriptions(Protocol):
    def pending_confirmation(self) -> dict[str, int]:
        """How many subscriptions of the alert topic await confirmation, per protocol (email, https, ...)."""
        ...


@dataclass(frozen=True)
class CanaryReport:
    sent: bool
    pending: dict[str, int] = field(default_factory=dict)
    message_id: str | None = None


def due(now: datetime, fleet: Fleet) -> bool:
    """Whether the tick at ``now`` is the canary's tick of the day."""
    canary = fleet.pipeline.alerts.canary
    window = timedelta(minutes=fleet.pipeline.watchdog_interval_minutes)
    start = now.replace(hour=canary.hour_utc, minute=0, second=0, microsecond=0)
    return canary.enabled and start <= now < start + window


def pending_of(subscription_arns: list[tuple[str, str]]) -> dict[str, int]:
    """(protocol, SubscriptionArn) pairs -> pending confirmations per protocol (SNS shows ``PendingConfirmation``
    in place of the ARN until the endpoint confirms)."""
    return dict(sorted(Counter(protocol for protocol, arn in subscription_arns if arn == PENDING).items()))


def canary_alert(pipeline: str, now: datetime, pending: dict[str, int]) -> Alert:
    unconfirmed = sum(pending.values())
    if unconfirmed:
        listed = ", ".join(f"{count} {protocol}" for protocol, count in pending.items())
        what = f"{unconfirmed} subscription(s) not confirmed ({listed})"
        severity = "warning"
    else:
        what = "alert path test, no action needed"
        severity = "info"
    body = [
        f"Canary: {what}",
        "",
        "This synthetic alert is sent once a day to every destination of the alert topic. If a destination",
        "stops receiving it, that path is broken (see docs/oncall.md, 'The canary').",
    ]
    if unconfirmed:
        body += [
            "",
            "Subscriptions still pending confirmation receive no alert at all:",
            *[f"    {protocol}: {count}" for protocol, count in pending.items()],
            "",
            "Next step:",
            "    e-mail: the address owner clicks the link in 'AWS Notification - Subscription Confirmation'",
            "    (or resubscribe it: redeploy after removing and re-adding it in fleet.yaml)",
            "    https: the webhook must answer SNS's SubscriptionConfirmation (docs/oncall.md)",
        ]
    body += ["", f"Alert time: {format_time(now)} - pipeline {pipeline}"]
    facts = {
        "pipeline": pipeline,
        "kind": CANARY,
        "phase": "open",
        "severity": severity,
        "what": what,
        "at": now.isoformat(),
        "pending_confirmation": pending,
    }
    subject = f"[{pipeline}] CANARY: {what}"[:100]
    return Alert(kind=CANARY, phase="open", subject=subject, body="\n".join(body) + "\n", facts=facts)


class _Notifier(Protocol):
    def notify(self, alert: Alert, *, dedup_id: str | None = None) -> str: ...


def send_if_due(now: datetime, *, fleet: Fleet, notifier: _Notifier, subscriptions: Subscriptions) -> CanaryReport:
    """The canary of the day at its tick (``due``), naming unconfirmed subscriptions; nothing otherwise."""
    if not due(now, fleet):
        return CanaryReport(sent=False)
    pending = subscriptions.pending_confirmation()
    alert = canary_alert(fleet.pipeline.name, now, pending)
    message_id = notifier.notify(alert, dedup_id=f"canary-{now:%Y-%m-%d}")
    return CanaryReport(sent=True, pending=pending, message_id=message_id)
