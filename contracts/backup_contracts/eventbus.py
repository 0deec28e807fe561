"""Putting contract events on the pipeline's bus: one helper, one error, for agents, Lambdas and tools.

PutEvents can accept a call and still reject some of its entries (``FailedEntryCount > 0``); such a
call raises ``PutEventsError`` carrying each rejected entry with its error, so the caller's retry
(SQS redelivery, the agent's job retry, the person at the CLI) sees exactly what was not delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from backup_contracts.events import Contract, put_events_entry

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef
else:
    EventBridgeClient = Any

PUT_EVENTS_MAX_ENTRIES = 10  # PutEvents takes at most 10 entries per call


class PutEventsError(RuntimeError):
    """PutEvents rejected entries; ``failed_entries`` pairs each one's source/detail-type with its error."""

    def __init__(self, failed_entries: list[dict[str, Any]]) -> None:
        self.failed_entries = failed_entries
        described = ", ".join(
            f"{entry.get('DetailType')}: {entry.get('ErrorCode')} {entry.get('ErrorMessage') or ''}".rstrip()
            for entry in failed_entries
        )
        count = len(failed_entries)
        super().__init__(f"PutEvents rejected {count} entr{'y' if count == 1 else 'ies'}: {described}")


def put_events(
    client: EventBridgeClient, events: Sequence[Contract], bus_name: str, *, when: datetime | None = None
) -> list[str]:
    """Put every event on ``bus_name`` (10 per call); returns their event ids in order.

    Raises ``PutEventsError`` naming every rejected entry; calls that raise (throttling, network)
    propagate as botocore raised them.
    """
    event_ids: list[str] = []
    failed: list[dict[str, Any]] = []
    for start in range(0, len(events), PUT_EVENTS_MAX_ENTRIES):
        entries = [put_events_entry(event, bus_name, when) for event in events[start : start + PUT_EVENTS_MAX_ENTRIES]]
        response = client.put_events(Entries=cast("list[PutEventsRequestEntryTypeDef]", entries))
        results: list[Any] = list(response.get("Entries", []))
        results += [{"ErrorCode": "NoResult"}] * (len(entries) - len(results))  # never assume delivery
        for entry, result in zip(entries, results, strict=False):
            if result.get("ErrorCode") or not result.get("EventId"):
                failed.append(
                    {
                        "Source": entry["Source"],
                        "DetailType": entry["DetailType"],
                        "ErrorCode": result.get("ErrorCode") or "NoEventId",
                        "ErrorMessage": result.get("ErrorMessage", ""),
                    }
                )
            else:
                event_ids.append(str(result["EventId"]))
    if failed:
        raise PutEventsError(failed)
    return event_ids
