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


def _field(values: list[Any]) -> list[str]:
    """One pattern field: plain strings as they are; with a ``{"prefix": p}`` among them, EventBridge's
    matchers (``Match.any_of`` of exact strings and prefixes)."""
    if all(isinstance(value, str) for value in values):
        return list(values)
    matchers = []
    for value in values:
        if isinstance(value, str):
            matchers.append(events.Match.exact_string(value))
        elif isinstance(value, dict) and set(value) == {"prefix"}:
            matchers.append(events.Match.prefix(value["prefix"]))
        else:
            raise ValueError(f"event pattern matcher {value!r} is not supported by event_pattern(); add it here")
    return list(events.Match.any_of(*matchers)) if len(matchers) > 1 else list(matchers[0])


def event_pattern(pattern: dict[str, list[Any]]) -> events.EventPattern:
    """Translate a shared pattern (backup_contracts.events.*_PATTERN) into a CDK EventPattern, losslessly."""
    known = {"source": "source", "detail-type": "detail_type", "account": "account", "region": "region"}
    unknown = set(pattern) - set(known)
    if unknown:
        raise ValueError(f"event pattern keys {sorted(unknown)} are not supported by event_pattern(); add them here")
    arguments: dict[str, Any] = {known[key]: _field(values) for key, values in pattern.items()}
    return events.EventPattern(**arguments)
