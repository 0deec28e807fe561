"""Alert formatting (plain Python) and publishing (moto SNS → SQS inbox)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from backup_functions import alerts

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 16, 5, 0, tzinfo=UTC)


def situation(**changes) -> alerts.Situation:
    fields = {
        "pipeline": "backup-pipeline",
        "agent": "db-1",
        "target": "orders-pg",
        "since": NOW - timedelta(hours=3),
        "now": NOW,
        "last_good_at": NOW - timedelta(hours=27),
        "last_good_run_id": "r-0",
        "last_good_bytes": 5 * 1024 * 1024,
        "rpo": timedelta(hours=26),
        "job_id": "orders-pg.20261116T020000Z",
        "run_id": "r-1",
        "stage": "dump",
        "exit_code": 1,
        "error": "pg_dump exited with status 1",
        "stderr_tail": "pg_dump: error: connection failed\npassword=hunter2 rejected",
    }
    return alerts.Situation(**{**fields, **changes})


@pytest.mark.parametrize("kind", sorted(alerts.BUILDERS))
@pytest.mark.parametrize("phase", ["open", "reminder", "resolved"])
def test_every_subject_is_ascii_and_at_most_100_chars(kind, phase):
    alert = alerts.build(kind, situation(target="t" * 40, agent="a" * 40), phase)
    assert len(alert.subject) <= alerts.SUBJECT_MAX
    assert alert.subject.isascii()
    assert "\n" not in alert.subject


def test_failed_subject_says_target_host_and_what_happened():
    alert = alerts.backup_failed(situation())
    assert alert.subject == "[backup-pipeline] BACKUP FAILED: orders-pg on db-1 - dump failed (exit 1)"


def test_failed_body_has_since_last_good_age_stderr_and_next_step():
    body = alerts.backup_failed(situation()).body
    assert "Since:       2026-11-16 02:00:00 UTC (3h 0m ago)" in body
    assert "Last good:   2026-11-15 02:00:00 UTC (1d 3h ago), run r-0, 5.0 MiB" in body
    assert "pg_dump: error: connection failed" in body
    assert "backupctl history orders-pg" in body
    assert "backupctl backup-now orders-pg" in body


def test_secrets_in_stderr_and_error_are_redacted():
    alert = alerts.backup_failed(situation(error="failed: postgres://app:s3cret@db/x"))
    assert "hunter2" not in alert.body
    assert "s3cret" not in alert.body
    assert "hunter2" not in json.dumps(alert.facts)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("PGPASSWORD=abc123 pg_dump", "abc123"),
        ("token: 'xyz987'", "xyz987"),
        ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        ("key AKIAABCDEFGHIJKLMNOP used", "AKIAABCDEFGHIJKLMNOP"),
        ("mysql://root:pw@host/db", "pw@"),
    ],
)
def test_redact_masks_common_secret_shapes(text, secret):
    assert secret not in alerts.redact(text)


def test_non_ascii_error_becomes_ascii_in_the_subject():
    alert = alerts.backup_unverified(situation(problems=("größe stimmt nicht",)))
    assert alert.subject.isascii()


def test_agent_silent_points_to_the_host():
    alert = alerts.agent_silent(situation(target=None))
    assert alert.subject.startswith("[backup-pipeline] AGENT SILENT: agent db-1")
    assert "systemctl status backup-agent" in alert.body


def test_resolved_alert_says_how_long_it_lasted():
    alert = alerts.rpo_breached(situation(), "resolved")
    assert alert.subject == "[backup-pipeline] RESOLVED: orders-pg on db-1 - backups good again"
    assert alert.body.startswith("RESOLVED after 3h 0m")
    assert "Error output" not in alert.body


def test_reminder_subject_says_still():
    alert = alerts.never_started(situation(notify_count=2), "reminder")
    assert alert.subject.startswith("[backup-pipeline] STILL BACKUP NOT STARTED")


def test_facts_are_json_for_machines():
    facts = json.loads(alerts.backup_failed(situation()).message_attributes()["alert"]["StringValue"])
    assert facts["kind"] == "failed"
    assert facts["last_good_age_s"] == 27 * 3600
    assert facts["rpo_s"] == 26 * 3600
    assert facts["next_steps"][-1] == "backupctl backup-now orders-pg --reason 'retry after fixing the cause'"


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(KeyError, match="known"):
        alerts.build("nope", situation())
