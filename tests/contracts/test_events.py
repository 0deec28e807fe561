from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from backup_contracts.events import (
    BackupSucceeded,
    DetailType,
    RestoreRequested,
    UnknownEventError,
    parse_event,
    put_events_entry,
)
from backup_contracts.naming import SOURCE_AGENT, agent_event_source, sender_agent
from backup_contracts.schemas import stale_files, validate

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def _succeeded(**overrides: object) -> BackupSucceeded:
    fields: dict[str, object] = {
        "job_id": "app.20261122T020000Z",
        "run_id": "r-1",
        "target": "app-sqlite",
        "agent": "demo-host",
        "started_at": NOW,
        "bucket": "b",
        "key": "agents/demo-host/app-sqlite/2026/11/22/r-1.sqlite.zst",
        "finished_at": NOW,
        "bytes_in": 10,
        "bytes_stored": 5,
        "sha256": "0" * 64,
        "engine": "sqlite",
        "format": "sqlite-db",
        "compression": "zstd-1",
        "duration_s": 1.5,
    }
    fields.update(overrides)
    return BackupSucceeded.model_validate(fields)


def test_an_event_round_trips_through_its_put_events_entry() -> None:
    event = _succeeded()
    entry = put_events_entry(event, "bus")
    assert (entry["Source"], entry["DetailType"]) == (agent_event_source(event.agent), "Backup Succeeded")
    assert parse_event(entry["Source"], entry["DetailType"], entry["Detail"]) == event


def test_an_agent_event_names_its_sender_in_its_source_and_nothing_else_passes_for_one() -> None:
    entry = put_events_entry(_succeeded(), "bus")
    assert sender_agent(entry["Source"]) == _succeeded().agent
    with pytest.raises(UnknownEventError, match="its own source"):
        parse_event(SOURCE_AGENT, entry["DetailType"], entry["Detail"])  # the bare family is no sender
    for source in ("backup.agent.", "backup.agent.Not_A_Name", "backup.agentx.db-1"):
        assert sender_agent(source) is None
        with pytest.raises(UnknownEventError):
            parse_event(source, entry["DetailType"], entry["Detail"])


def test_naive_timestamps_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        _succeeded(started_at=datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        _succeeded(password="hunter2")


def test_an_empty_backup_cannot_be_reported_as_succeeded() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        _succeeded(bytes_stored=0)


def test_unknown_event_types_are_named() -> None:
    with pytest.raises(UnknownEventError, match="detail-type='Backup Exploded'"):
        parse_event(SOURCE_AGENT, "Backup Exploded", {})


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ({"mode": "clone"}, "a clone restore needs a destination"),
        ({"mode": "in-place", "destination": "other"}, "in-place restore writes to the target itself"),
        ({"mode": "in-place", "backup": {"latest": True, "run_id": "x"}}, "choose exactly one"),
        ({"mode": "in-place", "backup": {}}, "choose exactly one"),
    ],
)
def test_restore_request_rules(detail: dict[str, object], reason: str) -> None:
    base = {"restore_id": "r-1", "target": "app-sqlite", "requested_by": "alice", "reason": "drill"}
    with pytest.raises(ValidationError, match=reason):
        RestoreRequested.model_validate(base | detail)


def test_committed_json_schemas_match_the_models() -> None:
    assert stale_files(REPO / "schemas") == []


def test_schema_validation_cli_accepts_a_good_request_and_names_a_bad_one(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {
                "restore_id": "r-1",
                "target": "app-sqlite",
                "mode": "in-place",
                "requested_by": "alice",
                "reason": "undo bad migration",
            }
        )
    )
    assert validate(DetailType.RESTORE_REQUESTED, good) is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"target": "app-sqlite"}))
    problem = validate(DetailType.RESTORE_REQUESTED, bad)
    assert problem is not None
    assert "restore_id" in problem
    assert validate("Restore Pls", good) is not None


def test_a_source_with_a_trailing_newline_names_no_agent() -> None:
    assert sender_agent("backup.agent.db-1\n") is None
    assert sender_agent("backup.agent.db-1") == "db-1"
