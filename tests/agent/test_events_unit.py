"""PutEvents partial failure becomes a typed error (Stubber, no network)."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from backup_agent.events import EventBridgeSink, PutEventsFailedError
from backup_contracts.events import AgentHeartbeat


def test_failed_entries_raise_a_typed_error_carrying_them():
    client = boto3.client("events", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]},
    )
    event = AgentHeartbeat(agent="demo-host", version="1", targets=["app"], sent_at=datetime.now(UTC))
    with stubber, pytest.raises(PutEventsFailedError) as info:
        EventBridgeSink(client, "bus").emit(event)

    assert info.value.failed_entries[0]["ErrorCode"] == "ThrottlingException"
    assert info.value.failed_entries[0]["entry"]["DetailType"] == "Agent Heartbeat"
