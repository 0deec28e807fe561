"""backupctl status shows the last drill (ok / FAILED) and its measured RTO against the objective."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backup_functions.ledger import TargetState
from backupctl.status import StatusRow, render_status

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _row(rto: timedelta | None = None, **state: object) -> StatusRow:
    return StatusRow.from_items(
        target="app",
        agent="db-host",
        engine="sqlite",
        rpo=timedelta(hours=26),
        rto=rto,
        state=TargetState.model_validate(
            {"pk": "TARGET#app", "sk": "STATE", "last_good_at": "2026-11-22T02:00:00.000000Z", "last_good_bytes": 1000}
            | state
        ),
    )


def test_status_shows_a_good_drill_and_its_rto() -> None:
    row = _row(last_drill_at="2026-11-21T03:00:00.000000Z", last_drill_ok=True, last_drill_rto_s=95.5)

    text = render_status([row], NOW)

    line = text.splitlines()[2]
    assert "LAST DRILL" in text.splitlines()[0]
    assert "2026-11-21 03:00:00 UTC ok" in line
    assert line.split()[-1] == "1m"  # the RTO column: 95.5 s, as an age
    assert row.as_json(NOW)["last_drill_ok"] is True


def test_status_shows_a_failed_drill() -> None:
    row = _row(last_drill_at="2026-11-21T03:00:00.000000Z", last_drill_ok=False, last_drill_rto_s=80)

    assert "FAILED" in render_status([row], NOW).splitlines()[2]


def test_status_has_no_drill_columns_without_drills() -> None:
    assert "LAST DRILL" not in render_status([_row()], NOW)


def test_a_sub_minute_rto_is_shown_in_seconds() -> None:
    row = _row(last_drill_at="2026-11-21T03:00:00.000000Z", last_drill_ok=True, last_drill_rto_s=0.25)

    assert render_status([row], NOW).splitlines()[2].rstrip().endswith("0.2s")


def test_status_shows_the_rto_against_its_objective_and_a_breach() -> None:
    met = _row(
        timedelta(minutes=30), last_drill_at="2026-11-21T03:00:00.000000Z", last_drill_ok=True, last_drill_rto_s=1200
    )
    missed = _row(
        timedelta(minutes=30), last_drill_at="2026-11-21T03:00:00.000000Z", last_drill_ok=True, last_drill_rto_s=2700
    )

    lines = render_status([met, missed], NOW).splitlines()

    assert "RTO / OBJECTIVE" in lines[0]
    assert lines[2].rstrip().endswith("20m / 30m")
    assert lines[3].rstrip().endswith("45m / 30m BREACHED")
    assert (met.as_json(NOW)["rto_met"], missed.as_json(NOW)["rto_met"]) == (True, False)
    assert missed.as_json(NOW)["rto_objective_s"] == 1800


def test_an_objective_without_a_drill_yet_shows_its_columns() -> None:
    line = render_status([_row(timedelta(hours=1))], NOW).splitlines()[2]
    assert line.rstrip().endswith("- / 1h 0m")
