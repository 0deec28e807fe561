"""put_events: every rejected entry becomes one typed error carrying it (Stubber, no network)."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from backup_agent.events import EventBridgeSink
from backup_contracts.eventbus import PutEventsError, put_events
from backup_contracts.events import AgentHeartbeat

pytestmark = pytest.mark.unit


def _client():
    return boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _heartbeat(agent: str = "demo-host") -> AgentHeartbeat:
    return AgentHeartbeat(agent=agent, version="1", targets=["app"], sent_at=datetime(2026, 11, 1, tzinfo=UTC))


def test_failed_entries_raise_a_typed_error_carrying_them():
    client = _client()
    stubber = Stubber(client)
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]},
    )
    with stubber, pytest.raises(PutEventsError) as info:
        EventBridgeSink(client, "bus").emit(_heartbeat())

    assert info.value.failed_entries == [
        {
            "Source": "backup.agent.demo-host",
            "DetailType": "Agent Heartbeat",
            "ErrorCode": "ThrottlingException",
            "ErrorMessage": "slow down",
        }
    ]
    assert "ThrottlingException slow down" in str(info.value)


def test_events_go_out_ten_per_call_and_their_ids_come_back_in_order():
    client = _client()
    stubber = Stubber(client)
    for batch in (range(10), range(10, 12)):
        stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": f"e{i}"} for i in batch]})
    with stubber:
        ids = put_events(client, [_heartbeat(f"host-{i}") for i in range(12)], "bus")
    assert ids == [f"e{i}" for i in range(12)]


def test_an_entry_without_an_event_id_counts_as_not_delivered():
    client = _client()
    stubber = Stubber(client)
    stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e0"}]})
    with stubber, pytest.raises(PutEventsError) as info:
        put_events(client, [_heartbeat("a"), _heartbeat("b")], "bus")
    assert [entry["ErrorCode"] for entry in info.value.failed_entries] == ["NoResult"]
