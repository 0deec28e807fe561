"""The evidence report's page and period without AWS: escaping, the CSP, the silence and RTO hooks, periods."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from backupctl.attainment import DrillOutcome, Interval, rpo_attainment, rto_attainment
from backupctl.context import UsageError
from backupctl.render import to_json
from backupctl.report import DEFAULT_PERIOD, resolve_period
from backupctl.report_html import render_html
from backupctl.report_ledger import rto_objective
from backupctl.report_model import GOOD, MISSING, Drill, Mark, Report, Silence, TargetReport

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 1, tzinfo=UTC)
PERIOD = Interval(T0, T0 + timedelta(days=30))
RPO = timedelta(hours=26)
EVIL = '<img src="https://evil.example/x.png" onerror="alert(1)">'


def target_report(*, objective: timedelta | None = None, silences: list[Silence] | None = None) -> TargetReport:
    goods = [T0 + timedelta(days=n, hours=1) for n in range(30) if n not in (10, 11, 12)]
    drills = [
        Drill("drill-orders-1", T0 + timedelta(days=7), "succeeded", T0 + timedelta(days=7), None, 600.0, None),
        Drill("drill-orders-2", T0 + timedelta(days=14), "failed", T0 + timedelta(days=14), None, None, EVIL),
    ]
    marks = [Mark(GOOD, at, finished_at=at, run_id=f"r{at:%d}", bytes_stored=1000 + at.day) for at in goods]
    marks.append(Mark(MISSING, T0 + timedelta(days=11), job_id="orders.x", detail=EVIL))
    return TargetReport(
        name="orders",
        agent="db-host",
        engine="postgresql",
        rpo=RPO,
        rpo_attainment=rpo_attainment(goods, RPO, PERIOD, T0 - timedelta(days=1)),
        rto_attainment=rto_attainment([d.outcome() for d in drills], objective),
        marks=marks,
        drills=drills,
        state=None,
        silences=silences or [],
    )


def report(target: TargetReport, *, silences_recorded: bool = False) -> Report:
    return Report(
        pipeline="backup-pipeline",
        period=PERIOD,
        generated_at=NOW,
        generated_by={"arn": f"arn:aws:iam::123456789012:user/{EVIL}", "account": "123456789012", "error": None},
        ledger_table="backup-pipeline-ledger",
        fleet_file="fleet.yaml",
        fleet_sha256="0" * 64,
        targets=[target],
        silences_recorded=silences_recorded,
    )


def test_ledger_and_identity_texts_are_escaped() -> None:
    page = render_html(report(target_report()))

    assert EVIL not in page
    assert "&lt;img src=&#34;https://evil.example/x.png&#34; onerror=&#34;alert(1)&#34;&gt;" in page
    assert "<img" not in page
    assert "<script" not in page


def test_the_page_allows_no_fetch_and_only_its_own_style_element() -> None:
    page = render_html(report(target_report()))
    (policy,) = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    (css,) = re.findall(r"<style>(.*?)</style>", page, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()

    assert html.unescape(policy) == (
        f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )
    assert "url(" not in css
    assert "@import" not in css
    assert page.count("<style") == 1
    assert " style=" not in page  # an inline style attribute would be refused by the policy


def test_silences_are_not_recorded_yet_and_the_page_says_so() -> None:
    page = render_html(report(target_report()))

    assert 'id="silences-not-recorded"' in page
    assert "band-silenced" not in page.split('id="legend"')[1].split("</ul>")[1]  # no band on any timeline


def test_a_silence_source_that_records_silences_puts_them_on_the_timeline_and_in_the_json() -> None:
    silence = Silence(Interval(T0 + timedelta(days=10), T0 + timedelta(days=12)), "alice", EVIL)
    built = report(target_report(silences=[silence]), silences_recorded=True)

    page = render_html(built)
    doc = json.loads(to_json(built.as_json()))

    assert 'id="silences-not-recorded"' not in page
    assert re.search(r'<rect class="band-silenced" x="[\d.]+" y="0"', page)
    assert doc["targets"][0]["silences"][0]["requested_by"] == "alice"
    assert doc["silences_recorded"] is True


def test_without_an_objective_the_rto_shows_the_last_measurement_and_no_objective() -> None:
    doc = report(target_report()).as_json()["targets"][0]["rto_attainment"]

    assert doc == {
        "objective_s": None,
        "percent": None,
        "not_measured_because": "no objective",
        "drills_ended": 2,
        "drills_within_objective": 0,
        "longest_rto_s": 600.0,
    }


def test_with_an_objective_a_failed_drill_counts_as_missed() -> None:
    built = report(target_report(objective=timedelta(minutes=15)))
    doc = built.as_json()["targets"][0]["rto_attainment"]
    page = render_html(built)

    assert (doc["percent"], doc["drills_ended"], doc["drills_within_objective"]) == (50.0, 2, 1)
    assert "50.00 %" in page
    assert "15m" in page


@dataclass
class FleetTargetWithRto:
    rto: str


def test_the_rto_objective_is_read_from_the_fleet_once_targets_have_one() -> None:
    assert rto_objective(FleetTargetWithRto("2h")) == timedelta(hours=2)  # type: ignore[arg-type]
    assert rto_objective(object()) is None  # type: ignore[arg-type]


def test_every_number_of_the_page_comes_from_the_json_twin() -> None:
    built = report(target_report())
    doc = built.as_json()["targets"][0]
    page = render_html(built)

    assert f'data-rpo-percent="{doc["rpo_attainment"]["percent"]}"' in page
    assert f"{doc['rpo_attainment']['percent']:.2f} %" in page
    assert (
        doc["rpo_attainment"]["percent"]
        == rpo_attainment(
            [m.finished_at for m in built.targets[0].marks if m.kind == GOOD and m.finished_at],
            RPO,
            PERIOD,
            T0 - timedelta(days=1),
        ).percent
    )


def test_the_default_period_is_the_30_days_up_to_now() -> None:
    assert resolve_period(None, None, NOW) == (Interval(NOW - DEFAULT_PERIOD, NOW), None)


def test_periods_take_dates_times_with_or_without_offsets_and_durations_ago() -> None:
    period, _ = resolve_period("2026-11-01", "2026-11-15T06:00:00+01:00", NOW)
    relative, _ = resolve_period("7d", "36h", NOW)

    assert period == Interval(T0, datetime(2026, 11, 15, 5, 0, tzinfo=UTC))
    assert relative == Interval(NOW - timedelta(days=7), NOW - timedelta(hours=36))
    assert resolve_period("2026-11-01T00:00Z", None, NOW)[0].start == T0


def test_an_end_in_the_future_is_cut_to_now_and_the_page_says_so() -> None:
    period, note = resolve_period("2026-11-01", "2027-01-01", NOW)

    assert period.end == NOW
    assert note is not None
    assert "2027-01-01 00:00:00 UTC" in note


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2026-11-10", "2026-11-01", "the period is empty"),
        ("yesterday", None, "--since 'yesterday' is neither a date, a time nor a duration. Fix:"),
        (None, "soon", "--until 'soon' is neither"),
    ],
)
def test_a_wrong_period_is_refused_with_a_fix(since: str | None, until: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        resolve_period(since, until, NOW)


def test_the_json_twin_serializes_with_iso_times() -> None:
    doc = json.loads(to_json(report(target_report()).as_json()))

    assert doc["format"] == "backup-pipeline/evidence-report/1"
    assert doc["period"] == {"since": T0.isoformat(), "until": PERIOD.end.isoformat(), "note": None}
    assert doc["targets"][0]["runs"]["missing"] == 1
    assert DrillOutcome(ok=True, rto=None) == DrillOutcome(ok=True, rto=None)


def test_with_a_vault_the_report_counts_the_good_backups_copied_off_site_and_in_time() -> None:
    base = target_report()
    goods = [m for m in base.marks if m.kind == GOOD]
    late, missing = goods[0], goods[1]
    marks = [
        replace(
            m, offsite_verified_at=(m.finished_at or m.at) + (timedelta(hours=3) if m is late else timedelta(minutes=4))
        )
        if m is not missing
        else m
        for m in base.marks
    ]
    built = report(replace(base, marks=marks, offsite_lag=timedelta(hours=1)))

    doc = built.as_json()["targets"][0]
    page = render_html(built)

    assert doc["offsite"] == {
        "lag_s": 3600.0,
        "good": len(goods),
        "copied": len(goods) - 1,
        "copied_within_lag": len(goods) - 2,
    }
    assert f'data-offsite-copied="{len(goods) - 1}"' in page
    assert report(base).as_json()["targets"][0]["offsite"] is None  # no vault: nothing claimed
    assert "Off-site copies" not in render_html(report(base))
