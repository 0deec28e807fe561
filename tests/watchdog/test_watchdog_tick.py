"""The watchdog tick against a moto ledger on a simulated clock: one alert per incident, reminders,
resolution, and no alert for anything healthy. Items are written with the shared Ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from wd_env import T0, Env, make_fleet

from backup_contracts import ledger as keys
from backup_contracts.events import BackupMissing, Contract
from backup_contracts.fleet import parse_fleet
from backup_functions.ledger import Incident, target_subject
from backup_functions.ledger.outbox import GRACE, Owed
from backup_functions.watchdog.handler import run_tick
from backup_functions.watchdog.logic import Watchdog
from backup_functions.watchdog.notify import AlertNotifier
from backup_functions.watchdog.ports import WatchdogError
from backup_functions.watchdog.store import WatchdogStore

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
M = timedelta(minutes=1)
TARGET = "db-0-0"
AGENT = "host-0"


def test_healthy_items_produce_no_alert(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.heartbeat(AGENT, T0)
    env.dispatched_job("db-0-1", T0)

    report = env.tick(T0 + 10 * M)

    assert env.inbox() == []
    assert report.overdue_items == 0
    assert env.incidents() == []


def test_rpo_breach_alerts_once_when_the_rpo_passes(env: Env) -> None:
    env.good_backup(TARGET, T0)

    env.tick(T0 + 26 * H - M)
    assert env.inbox() == []

    env.tick(T0 + 26 * H)
    first = env.inbox()
    env.tick(T0 + 26 * H + 5 * M)
    env.tick(T0 + 26 * H + 10 * M)

    assert [(m.kind, m.phase) for m in first] == [("rpo", "open")]
    assert env.inbox() == []
    assert TARGET in first[0].subject
    assert AGENT in first[0].subject


class RecordingEvents:
    def __init__(self) -> None:
        self.published: list[Contract] = []

    def publish(self, event: Contract) -> None:
        self.published.append(event)


def test_an_rpo_breach_is_announced_once_as_a_backup_missing_event(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.ledger.jobs.advance_marker(T0 + 27 * H + 5 * M, "fleet")  # the dispatcher runs throughout
    events = RecordingEvents()

    for minutes in (0, 5, 65):
        run_tick(T0 + 26 * H + minutes * M, fleet=env.fleet, ledger=env.ledger, notifier=env.notifier, events=events)

    assert events.published == [
        BackupMissing(
            target=TARGET, agent=AGENT, problem="no good backup within RPO", since=T0 + 26 * H, last_good_at=T0
        )
    ]
    assert [(m.kind, m.phase) for m in env.inbox()] == [("rpo", "open"), ("rpo", "reminder")]


def test_rpo_breach_reminds_after_the_reminder_interval(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.tick(T0 + 26 * H)
    env.inbox()

    env.tick(T0 + 26 * H + 55 * M)
    assert env.inbox() == []
    env.tick(T0 + 27 * H)
    reminders = env.inbox()

    assert [(m.kind, m.phase) for m in reminders] == [("rpo", "reminder")]
    assert reminders[0].subject.startswith("[wd] STILL")


def test_rpo_breach_resolves_after_the_next_good_backup(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.tick(T0 + 26 * H)
    env.inbox()

    env.good_backup(TARGET, T0 + 28 * H)
    env.tick(T0 + 28 * H + 5 * M)
    resolved = env.inbox()
    env.tick(T0 + 30 * H)

    assert [(m.kind, m.phase) for m in resolved] == [("rpo", "resolved")]
    assert "RESOLVED" in resolved[0].subject
    assert env.incidents() == []
    assert env.inbox() == []


def test_overlapping_ticks_send_one_alert(env: Env) -> None:
    """Two ticks that both read the incidents before either wrote: the conditional put lets one alert."""
    env.good_backup(TARGET, T0)
    now = T0 + 26 * H
    store = WatchdogStore(env.ledger)
    stale_incidents = store.open_incidents()  # tick B's read, taken before tick A opens anything

    class StaleStore(WatchdogStore):
        def open_incidents(self) -> list[Incident]:
            return stale_incidents

    env.tick(now)  # tick A
    sent: list[Owed] = []

    class Capture(AlertNotifier):
        def deliver(self, entry: Owed) -> None:
            sent.append(entry)

    Watchdog(StaleStore(env.ledger), Capture(env.notifier, "wd"), reminder_interval=H).tick(now)  # tick B

    assert len(env.inbox()) == 1
    assert sent == []


def test_dispatched_job_that_never_starts_alerts(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.heartbeat(AGENT, T0 + 2 * H, timeout=7 * 24 * H)  # the agent is alive: the job alone is the cause
    job = env.dispatched_job(TARGET, T0 + 2 * H)

    env.tick(T0 + 2 * H + 29 * M)
    assert env.inbox() == []
    env.tick(T0 + 2 * H + 30 * M)
    received = env.inbox()

    assert [(m.kind, m.phase) for m in received] == [("start", "open")]
    assert received[0].facts["job_id"] == job.job_id
    assert "never started" in received[0].subject


def test_started_run_that_never_ends_alerts_as_stuck(env: Env) -> None:
    from backup_contracts.events import BackupStarted

    env.good_backup(TARGET, T0)
    job = env.dispatched_job(TARGET, T0 + 2 * H)
    started = BackupStarted(
        job_id=job.job_id, run_id="r-1", target=TARGET, agent=AGENT, started_at=T0 + 2 * H + M, bucket="b", key="k"
    )
    env.ledger.jobs.started(started, default_deadline=job.deadline, expires_at=T0 + 30 * 24 * H)

    env.tick(T0 + 3 * H)
    assert env.inbox() == []
    env.tick(T0 + 4 * H)
    received = env.inbox()

    assert [(m.kind, m.phase) for m in received] == [("end", "open")]
    assert "STUCK" in received[0].subject


def test_silent_agent_alerts_and_resolves_when_heartbeats_return(env: Env) -> None:
    env.heartbeat(AGENT, T0)

    env.tick(T0 + 29 * M)
    assert env.inbox() == []
    env.tick(T0 + 30 * M)
    raised = env.inbox()
    env.heartbeat(AGENT, T0 + 40 * M)
    env.tick(T0 + 45 * M)
    resolved = env.inbox()

    assert [(m.kind, m.phase) for m in raised] == [("heartbeat", "open")]
    assert "agent host-0" in raised[0].subject
    assert [(m.kind, m.phase) for m in resolved] == [("heartbeat", "resolved")]


def test_job_watch_superseded_by_a_newer_good_backup_is_cleared_without_alert(env: Env) -> None:
    job = env.dispatched_job(TARGET, T0)
    env.good_backup(TARGET, T0 + 24 * H)  # a later job succeeded; this one's message was lost

    report = env.tick(T0 + 25 * H)
    row = env.ledger.client.get(keys.target_pk(TARGET), keys.job_sk(job.job_id))

    assert env.inbox() == []
    assert report.superseded == [f"{keys.target_pk(TARGET)}/{keys.job_sk(job.job_id)}"]
    assert row is not None
    assert keys.WATCH_DEADLINE not in row


def test_failed_backup_incident_is_reminded_but_not_resolved_without_a_newer_good_backup(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.ledger.incidents.open(  # opened by the audit, which alerted at once
        target_subject(TARGET),
        "failed",
        opened_at=T0 + H,
        details={"stage": "dump", "exit_code": 1, "error": "pg_dump failed", "stderr_tail": "FATAL: nope"},
        target=TARGET,
        agent=AGENT,
    )

    env.tick(T0 + H + 30 * M)
    assert env.inbox() == []
    env.tick(T0 + 2 * H)
    reminder = env.inbox()

    assert [(m.kind, m.phase) for m in reminder] == [("failed", "reminder")]
    assert "FATAL: nope" in reminder[0].body
    assert len(env.incidents()) == 1


def test_failed_backup_incident_resolves_after_a_newer_good_backup(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.ledger.incidents.open(  # opened by the audit, which alerted at once
        target_subject(TARGET), "failed", opened_at=T0 + H, details={"error": "x"}, target=TARGET, agent=AGENT
    )

    env.good_backup(TARGET, T0 + 3 * H)
    env.tick(T0 + 3 * H + 5 * M)

    assert [(m.kind, m.phase) for m in env.inbox()] == [("failed", "resolved")]
    assert env.incidents() == []


def test_an_alert_that_could_not_be_sent_is_sent_by_the_next_tick(env: Env) -> None:
    env.good_backup(TARGET, T0)
    store = WatchdogStore(env.ledger)

    class Down(AlertNotifier):
        def deliver(self, entry: Owed) -> None:
            raise ConnectionError("SNS unreachable")

    with pytest.raises(WatchdogError, match="SNS unreachable"):
        Watchdog(store, Down(env.notifier, "wd"), reminder_interval=H).tick(T0 + 26 * H)
    env.tick(T0 + 26 * H + 5 * M)

    assert [(m.kind, m.phase) for m in env.inbox()] == [("rpo", "open")]


def test_alert_says_what_since_when_and_the_next_step(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.tick(T0 + 27 * H)

    (alert,) = env.inbox()

    assert alert.subject == f"[wd] BACKUP MISSING: {TARGET} on {AGENT} - no good backup within RPO"
    assert "Since:       2026-11-21 02:00:00 UTC (1h 0m ago)" in alert.body
    assert "Last good:   2026-11-20 00:00:00 UTC (1d 3h ago)" in alert.body
    assert f"backupctl history {TARGET}" in alert.body
    assert alert.facts["rpo_s"] == 26 * 3600


def test_an_alert_the_audit_still_owes_is_left_to_its_redelivery_then_sent_once_by_the_tick(env: Env) -> None:
    """The audit opened a failed-backup incident owing its alert, and the publish failed: its SQS redelivery
    sends it; only after the outbox's grace does the watchdog send it — the same message, once."""
    alert = {"kind": "failed", "phase": "open", "subject": f"BACKUP FAILED: {TARGET}", "body": "x", "facts": {}}
    owed = {"alert": Owed(id=f"incident:{TARGET}:open", kind="alert", owed_at=T0, payload=alert)}
    _, claim = env.ledger.incidents.open(
        target_subject(TARGET), "failed", opened_at=T0, details={"error": "x"}, owed=owed, target=TARGET, agent=AGENT
    )
    assert claim is not None

    env.tick(T0 + GRACE - M)
    assert env.inbox() == []

    env.tick(T0 + GRACE)
    env.tick(T0 + GRACE + M)  # before the first reminder is due
    assert [(m.kind, m.phase) for m in env.inbox()] == [("failed", "open")]
    (incident,) = env.incidents()
    assert not incident.get("owed")


def test_target_never_backed_up_alerts_once_its_first_dispatch_plus_rpo_passes(env: Env) -> None:
    job = env.dispatched_job(TARGET, T0)
    assert env.ledger.targets.bootstrap(  # what the dispatcher does on first sight
        TARGET, agent=AGENT, engine=job.engine, rpo=job.rpo, first_dispatched_at=job.issued_at
    )
    env.dispatched_job(TARGET, T0 + 24 * H)  # the next day's job: neither ever starts
    env.heartbeat(AGENT, T0, timeout=7 * 24 * H)  # the agent is alive: this target alone is the cause

    env.tick(T0 + 26 * H - M)
    before = [(m.kind, m.phase) for m in env.inbox()]
    env.tick(T0 + 26 * H)
    after = env.inbox()

    assert ("rpo", "open") not in before
    assert [(m.kind, m.phase) for m in after] == [("rpo", "open")]
    assert "Last good:   never" in after[0].body


def test_a_target_removed_from_the_fleet_closes_its_incident_with_one_notice_and_is_not_watched(env: Env) -> None:
    env.good_backup(TARGET, T0)
    env.heartbeat(AGENT, T0, timeout=30 * 24 * H)
    env.tick(T0 + 26 * H)
    assert [(m.kind, m.phase) for m in env.inbox()] == [("rpo", "open")]
    spec = make_fleet(2).model_dump(mode="json", exclude_none=True)
    spec["agents"][0]["targets"] = [t for t in spec["agents"][0]["targets"] if t["name"] != TARGET]
    without = parse_fleet(spec)

    for hour in range(27, 27 + 72):  # three simulated days, hourly
        env.tick(T0 + hour * H, fleet=without)
    received = env.inbox()

    assert [(m.kind, m.phase, m.attributes.get("target")) for m in received] == [("removed", "resolved", TARGET)]
    assert "REMOVED FROM THE FLEET" in received[0].subject
    assert "kept under retention" in received[0].body
    assert env.incidents() == []
    state = env.ledger.targets.get(TARGET)
    assert state is not None
    assert state.watch_deadline is None
    assert state.last_good_at == T0
