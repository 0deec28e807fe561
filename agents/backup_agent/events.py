"""Emitting the agent's contract events to the pipeline's EventBridge bus."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from backup_contracts.events import Contract, put_events_entry

log = logging.getLogger(__name__)


class PutEventsFailedError(Exception):
    """PutEvents accepted the call but rejected entries; ``failed_entries`` pairs each entry with its error."""

    def __init__(self, failed_entries: list[dict[str, Any]]) -> None:
        self.failed_entries = failed_entries
        codes = sorted({str(item.get("ErrorCode")) for item in failed_entries})
        super().__init__(
            f"PutEvents rejected {len(failed_entries)} entr{'y' if len(failed_entries) == 1 else 'ies'}: "
            + ", ".join(codes)
        )


class EventSink(Protocol):
    def emit(self, event: Contract) -> None: ...


class EventBridgeSink:
    """Puts each contract event on the bus; a partial failure raises ``PutEventsFailedError``."""

    def __init__(self, events_client: Any, bus_name: str) -> None:
        self._client = events_client
        self._bus = bus_name

    def emit(self, event: Contract) -> None:
        entry = put_events_entry(event, self._bus)
        response = self._client.put_events(Entries=[entry])
        if response.get("FailedEntryCount", 0):
            failed = [
                {"entry": {"Source": entry["Source"], "DetailType": entry["DetailType"]}, **result}
                for result in response.get("Entries", [])
                if result.get("ErrorCode")
            ]
            raise PutEventsFailedError(failed)
        log.info("event emitted: %s", entry["DetailType"], extra={"ctx_event": entry["DetailType"]})


class RecordingSink:
    """In-memory sink for tests and dry runs."""

    def __init__(self) -> None:
        self.events: list[Contract] = []

    def emit(self, event: Contract) -> None:
        self.events.append(event)
