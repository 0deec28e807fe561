"""The pipeline's own EventBridge bus, with an archive so events can be replayed after an incident."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from constructs import Construct

from backup_contracts.naming import event_bus_name

ARCHIVE_DAYS = 30


class EventBus(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, pipeline: str) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=event_bus_name(pipeline))
        self.archive = self.bus.archive(
            "Archive",
            description=f"{pipeline}: every event on the bus, for replay after an incident",
            event_pattern=events.EventPattern(account=[Stack.of(self).account]),
            retention=Duration.days(ARCHIVE_DAYS),
        )


def event_pattern(pattern: dict[str, list[str]]) -> events.EventPattern:
    """Translate a shared pattern (backup_contracts.events.*_PATTERN) into a CDK EventPattern, losslessly."""
    known = {"source": "source", "detail-type": "detail_type", "account": "account", "region": "region"}
    unknown = set(pattern) - set(known)
    if unknown:
        raise ValueError(f"event pattern keys {sorted(unknown)} are not supported by event_pattern(); add them here")
    arguments: dict[str, Any] = {known[key]: list(values) for key, values in pattern.items()}
    return events.EventPattern(**arguments)
