"""``backupctl report`` over ten simulated days that the real dispatcher and audit wrote into a moto ledger
(``report_world`` tells the story): both formats, the same numbers in each, and the period's evidence."""

from __future__ import annotations

import hashlib
import html
import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from report_world import DAY, DAYS, HOSTILE_ERROR, EvidencePages

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)


def targets(pages: EvidencePages) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in pages.doc()["targets"]}


class Cells(HTMLParser):
    """The summary table's rows as {target: {data attribute or column: text}}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.percent: dict[str, str] = {}
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "target-row":
            self._row = a["data-target"]
            self.rows[self._row or ""] = []
        elif tag == "td" and self._row is not None:
            self._cell = []
            if "data-rpo-percent" in a:
                self.percent[self._row] = a["data-rpo-percent"] or ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self.rows[self._row].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            self._row = None


def summary(pages: EvidencePages) -> Cells:
    cells = Cells()
    cells.feed(pages.html.read_text(encoding="utf-8"))
    return cells


def test_daily_good_backups_attain_100_percent_and_the_drills_show_their_rto(evidence_pages: EvidencePages) -> None:
    orders = targets(evidence_pages)["orders"]

    assert orders["rpo_attainment"]["percent"] == 100.0
    assert orders["runs"] == {"good": DAYS, "failed": 0, "unverified": 0, "missing": 0, "running": 0}
    assert [d["rto_s"] for d in orders["drills"]] == [720.0] * len(evidence_pages.world.drills)
    assert [d["restore_id"] for d in orders["drills"]] == evidence_pages.world.drills
    assert orders["rto_attainment"]["objective_s"] is None
    assert orders["rto_attainment"]["not_measured_because"] == "no objective"
    assert orders["last_drill"]["ok"] is True
    assert orders["last_drill"]["recorded_rto_s"] == 720.0


def test_a_failing_streak_is_one_breach_from_last_good_plus_rpo_to_the_next_good(
    evidence_pages: EvidencePages,
) -> None:
    shop = targets(evidence_pages)["shop"]
    rpo = shop["rpo_attainment"]
    failures = [m for m in shop["timeline"] if m["kind"] == "failed"]

    assert len(failures) == 4  # days 3 to 6
    assert all(m["detail"] == f"dump: {HOSTILE_ERROR}" for m in failures)
    (breach,) = rpo["breaches"]
    # the last good backup (day 2) + 26 h, until the next good one (day 7): five days less the RPO
    assert breach["duration_s"] == pytest.approx((5 * DAY - 26 * HOUR).total_seconds(), abs=300)
    assert rpo["percent"] == pytest.approx(100 * (1 - breach["duration_s"] / (DAYS * DAY).total_seconds()), abs=0.01)


def test_jobs_of_a_host_that_was_down_are_missing_runs(evidence_pages: EvidencePages) -> None:
    inventory = targets(evidence_pages)["inventory"]
    missing = [m for m in inventory["timeline"] if m["kind"] == "missing"]

    assert [evidence_pages.world.day(m_at) for m_at in _times(missing)] == [4, 5, 6, 7]
    assert all(m["detail"] == "dispatched, never started" for m in missing)
    assert all(m["job_id"].startswith("inventory.") for m in missing)
    assert inventory["rpo_attainment"]["percent"] < 70


def test_a_target_added_mid_period_is_measured_from_its_first_backup(evidence_pages: EvidencePages) -> None:
    analytics = targets(evidence_pages)["analytics"]
    world = evidence_pages.world
    measured_from = _times([{"at": analytics["rpo_attainment"]["measured_from"]}])[0]

    assert world.day(measured_from) == 5
    assert analytics["rpo_attainment"]["percent"] == 100.0
    assert analytics["rpo_attainment"]["measured_s"] < (5 * DAY).total_seconds()


def test_the_page_shows_the_same_numbers_as_the_json_twin(evidence_pages: EvidencePages) -> None:
    doc = evidence_pages.doc()
    cells = summary(evidence_pages)

    assert list(cells.rows) == [t["target"] for t in doc["targets"]]
    for target in doc["targets"]:
        row = cells.rows[target["target"]]
        percent = target["rpo_attainment"]["percent"]
        assert cells.percent[target["target"]] == str(percent)
        assert row[3].startswith(f"{percent:.2f} %")
        assert row[6:9] == [
            str(target["runs"]["good"]),
            str(target["runs"]["failed"] + target["runs"]["unverified"]),
            str(target["runs"]["missing"]),
        ]
        assert row[9] == "no objective"


def test_the_page_names_the_pipeline_period_caller_and_its_json_twin(evidence_pages: EvidencePages) -> None:
    page = evidence_pages.html.read_text(encoding="utf-8")
    doc = evidence_pages.doc()
    twin_digest = hashlib.sha256(evidence_pages.json.read_bytes()).hexdigest()

    assert doc["pipeline"] == "evidence"
    assert doc["generated_by"]["arn"].startswith("arn:aws:sts::") or doc["generated_by"]["arn"].startswith(
        "arn:aws:iam::"
    )
    assert doc["generated_by"]["arn"] in page
    assert '<span id="pipeline">evidence</span>' in page
    assert f"{doc['period']['since'][:10]}" in page
    assert twin_digest in page
    assert doc["silences_recorded"] is True  # the ledger records silences: "none" means none
    assert 'id="silences-not-recorded"' not in page


def test_ledger_text_is_escaped_and_nothing_on_the_page_points_outside_it(evidence_pages: EvidencePages) -> None:
    page = evidence_pages.html.read_text(encoding="utf-8")

    assert "<script" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert re.search(r"<img\b", page) is None
    assert re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", page) is None
    assert "default-src 'none'" in html.unescape(page)


def test_json_to_stdout_is_the_file_twin_and_the_table_has_every_target(evidence_pages: EvidencePages) -> None:
    printed, written = json.loads(evidence_pages.stdout_json), evidence_pages.doc()
    assert printed.pop("generated_at") >= written.pop("generated_at")  # a second run, a moment later
    assert printed == written
    assert "shop" in evidence_pages.summary
    assert "RPO ATTAINMENT" in evidence_pages.summary
    for target in evidence_pages.doc()["targets"]:
        assert f"{target['rpo_attainment']['percent']:.2f} %" in evidence_pages.summary


def _times(marks: list[dict[str, Any]]) -> list[Any]:
    from datetime import datetime

    return [datetime.fromisoformat(m["at"]) for m in marks]
