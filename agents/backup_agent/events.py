"""Emitting the agent's contract events to the pipeline's EventBridge bus."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from backup_contracts.eventbus import PutEventsError, put_events
from backup_contracts.events import DETAIL_TYPE_OF, Contract

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
else:
    EventBridgeClient = Any

log = logging.getLogger(__name__)

__all__ = ["EventBridgeSink", "EventSink", "PutEventsError", "RecordingSink"]


class EventSink(Protocol):
    def emit(self, event: Contract) -> None: ...


class EventBridgeSink:
    """Puts each contract event on the bus; a rejected entry raises ``PutEventsError``."""

    def __init__(self, events_client: EventBridgeClient, bus_name: str) -> None:
        self._client = events_client
        self._bus = bus_name

    def emit(self, event: Contract) -> None:
        put_events(self._client, [event], self._bus)
        detail_type = DETAIL_TYPE_OF[type(event)][1]
        log.info("event emitted: %s", detail_type, extra={"ctx_event": detail_type})


class RecordingSink:
    """In-memory sink for tests and dry runs."""

    def __init__(self) -> None:
        self.events: list[Contract] = []

    def emit(self, event: Contract) -> None:
        self.events.append(event)
