"""The watchdog's rules as plain functions: no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backup_contracts import ledger as keys
from backup_functions.ledger import Incident, TargetState
from backup_functions.watchdog.model import OverdueItem
from backup_functions.watchdog.ports import is_superseded, reminder_due

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _job(kind: str, issued: datetime) -> OverdueItem:
    return OverdueItem.from_item(
        {
            keys.PK: "TARGET#orders",
            keys.SK: "JOB#orders.20261122T020000Z",
            keys.WATCH_KIND: kind,
            keys.WATCH_DEADLINE: keys.iso(issued + H),
            "issued_at": keys.iso(issued),
            "agent": "db-1",
        }
    )


def _incident(last_notified: datetime | None) -> Incident:
    item = {keys.SK: "target:orders#rpo", "subject": "target:orders", "kind": "rpo", "opened_at": keys.iso(NOW - 5 * H)}
    if last_notified is not None:
        item["last_notified_at"] = keys.iso(last_notified)
    return Incident.model_validate({keys.PK: keys.INCIDENTS_PK, **item})


def state(**attributes: str) -> TargetState:
    return TargetState.model_validate({keys.PK: "TARGET#orders", keys.SK: keys.STATE_SK, **attributes})


def test_overdue_job_item_names_its_target_agent_and_incident() -> None:
    item = _job("start", NOW - 2 * H)

    assert (item.target, item.agent, item.job_id) == ("orders", "db-1", "orders.20261122T020000Z")
    assert item.incident_sk == "target:orders#start"


def test_agent_item_is_an_agent_subject() -> None:
    item = OverdueItem.from_item(
        {keys.PK: "AGENT#db-1", keys.SK: "STATE", keys.WATCH_KIND: "heartbeat", keys.WATCH_DEADLINE: keys.iso(NOW)}
    )

    assert (item.target, item.agent, item.incident_sk) == (None, "db-1", "agent:db-1#heartbeat")


def test_job_is_superseded_only_by_a_good_backup_newer_than_it() -> None:
    job = _job("start", NOW - 2 * H)

    assert is_superseded(job, state(last_good_at=keys.iso(NOW - H)))
    assert not is_superseded(job, state(last_good_at=keys.iso(NOW - 3 * H)))
    assert not is_superseded(job, state())
    assert not is_superseded(job, None)


def test_rpo_watch_is_never_superseded() -> None:
    item = OverdueItem.from_item(
        {keys.PK: "TARGET#orders", keys.SK: "STATE", keys.WATCH_KIND: "rpo", keys.WATCH_DEADLINE: keys.iso(NOW)}
    )

    assert not is_superseded(item, state(last_good_at=keys.iso(NOW)))


def test_reminder_is_due_after_the_interval_or_when_never_notified() -> None:
    assert reminder_due(_incident(None), NOW, H)
    assert reminder_due(_incident(NOW - H), NOW, H)
    assert not reminder_due(_incident(NOW - H + timedelta(seconds=1)), NOW, H)
