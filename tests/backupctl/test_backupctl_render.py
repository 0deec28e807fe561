"""backupctl's rendering and state rules: plain functions, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backup_functions.ledger import RunRecord
from backupctl.history import render_history
from backupctl.render import RED, RESET, table
from backupctl.status import BREACHED, FAILED, NO_BACKUP_YET, OK, RUNNING, STUCK, StatusRow, render_status

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RPO = timedelta(hours=26)


def _row(**fields: object) -> StatusRow:
    base: dict[str, object] = {"target": "orders", "agent": "db-1", "engine": "postgresql", "rpo": RPO}
    return StatusRow(**{**base, **fields})  # type: ignore[arg-type]


def test_target_with_a_recent_good_backup_is_ok() -> None:
    assert _row(last_good_at=NOW - timedelta(hours=3)).state(NOW) == OK


def test_target_whose_last_good_backup_is_older_than_its_rpo_is_breached() -> None:
    assert _row(last_good_at=NOW - timedelta(hours=27)).state(NOW) == BREACHED


def test_target_never_backed_up_is_breached_once_its_first_deadline_passed() -> None:
    assert _row(rpo_deadline=NOW + timedelta(hours=1)).state(NOW) == NO_BACKUP_YET
    assert _row(rpo_deadline=NOW - timedelta(minutes=1)).state(NOW) == BREACHED


def test_failure_newer_than_the_last_good_backup_shows_failed() -> None:
    row = _row(last_good_at=NOW - timedelta(hours=5), last_failure_at=NOW - timedelta(hours=1), last_run_state="failed")
    assert row.state(NOW) == FAILED


def test_running_and_stuck_states() -> None:
    assert _row(last_good_at=NOW - timedelta(hours=5), last_run_state="started").state(NOW) == RUNNING
    assert _row(last_good_at=NOW - timedelta(hours=5), incidents=("end",)).state(NOW) == STUCK


def test_status_table_shows_age_against_rpo_size_and_state() -> None:
    rows = [
        _row(last_good_at=NOW - timedelta(hours=3), last_good_bytes=2048),
        _row(target="shop", last_good_at=NOW - timedelta(hours=30), incidents=("rpo",)),
    ]

    text = render_status(rows, NOW)
    lines = text.splitlines()

    assert lines[0].split() == [
        "TARGET",
        "AGENT",
        "LAST",
        "GOOD",
        "BACKUP",
        "AGE",
        "/",
        "RPO",
        "SIZE",
        "STATE",
        "INCIDENTS",
    ]
    assert "3h 0m / 1d 2h" in lines[2]
    assert "2.0 KiB" in lines[2]
    assert lines[3].split()[-3:] == ["RPO", "BREACHED", "rpo"]
    assert lines[-1].startswith("2 target(s), 1 need attention")
    assert "\033[" not in text


def test_status_table_colours_breaches_red_only_when_asked() -> None:
    rows = [_row(target="shop", last_good_at=NOW - timedelta(hours=30))]

    coloured = render_status(rows, NOW, colour=True)

    assert f"{RED}shop" in coloured
    assert RESET in coloured


def test_drill_columns_appear_when_a_drill_is_recorded() -> None:
    plain = render_status([_row(last_good_at=NOW)], NOW)
    drilled = render_status([_row(last_good_at=NOW, last_drill_at=NOW - timedelta(days=1), last_rto_s=95.0)], NOW)

    assert "LAST DRILL" not in plain
    assert "LAST DRILL" in drilled
    assert drilled.splitlines()[2].split()[-1] == "1m"  # the RTO column: 95 s, as an age


def test_table_pads_columns_to_the_widest_cell() -> None:
    text = table(["A", "B"], [["long-value", "x"], ["y", "z"]])
    assert text.splitlines() == ["A           B", "----------  -", "long-value  x", "y           z"]


def test_history_lists_runs_with_duration_state_and_error() -> None:
    runs = [
        {
            "run_id": "r-2",
            "state": "failed",
            "trigger": "schedule",
            "started_at": "2026-11-22T02:00:00.000000Z",
            "finished_at": "2026-11-22T02:00:40.000000Z",
            "error": "pg_dump: connection refused",
        },
        {
            "run_id": "r-1",
            "state": "succeeded",
            "trigger": "user",
            "started_at": "2026-11-21T02:00:00.000000Z",
            "finished_at": "2026-11-21T02:05:00.000000Z",
            "bytes_stored": 1048576,
        },
    ]

    records = [
        RunRecord.model_validate(
            {
                "pk": "TARGET#orders",
                "sk": f"RUN#{run['run_id']}",
                "job_id": "j",
                "agent": "a",
                "target": "orders",
                **run,
            }
        )
        for run in runs
    ]

    lines = render_history("orders", records).splitlines()

    assert lines[0] == "orders: 2 run(s), newest first"
    assert "r-2" in lines[3]
    assert "40s" in lines[3]
    assert "connection refused" in lines[3]
    assert "1.0 MiB" in lines[4]
    assert "5m" in lines[4]


def test_history_of_a_target_without_runs_says_so() -> None:
    assert render_history("orders", []) == "orders: no runs recorded\n"


def test_the_offsite_column_says_ok_pending_or_missing() -> None:
    vaulted = {"offsite": True, "last_good_run_id": "r2", "last_good_at": NOW - timedelta(minutes=20)}
    rows = [
        _row(**vaulted, last_offsite_run_id="r2", last_offsite_good_at=NOW - timedelta(minutes=20)),
        _row(**vaulted, target="shop", last_offsite_run_id="r1", last_offsite_good_at=NOW - timedelta(days=1)),
        _row(**vaulted, target="late", incidents=("offsite",)),
    ]

    text = render_status(rows, NOW)

    assert "OFF-SITE" in text.splitlines()[0]
    assert [row.offsite_cell(NOW) for row in rows] == ["ok", "pending 20m (last copy 1d 0h)", "MISSING 20m"]
    assert rows[2].state(NOW) == "OFF-SITE MISSING"
    assert "OFF-SITE" not in render_status([_row(last_good_at=NOW)], NOW)


def test_a_target_that_needs_its_copy_ages_from_its_newest_copy() -> None:
    row = _row(
        offsite=True,
        rpo_needs_offsite=True,
        last_good_run_id="r9",
        last_good_at=NOW - timedelta(hours=1),
        last_offsite_run_id="r8",
        last_offsite_good_at=NOW - timedelta(hours=27),
    )

    assert row.age(NOW) == timedelta(hours=27)
    assert row.state(NOW) == BREACHED


def test_history_shows_which_runs_have_an_offsite_copy() -> None:
    started = NOW - timedelta(hours=2)
    common = {"pk": "TARGET#orders", "job_id": "j", "target": "orders", "agent": "db-1", "started_at": started}
    runs = [
        RunRecord(**common, sk="RUN#2", run_id="r2", state="succeeded"),  # type: ignore[arg-type]
        RunRecord(**common, sk="RUN#1", run_id="r1", state="succeeded", offsite_verified_at=started),  # type: ignore[arg-type]
    ]

    lines = render_history("orders", runs, offsite=True).splitlines()

    assert "OFF-SITE" in lines[1]
    assert "pending" in lines[3]
    assert " ok " in lines[4]
