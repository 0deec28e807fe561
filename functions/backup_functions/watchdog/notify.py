"""Turn the watchdog's notices into the pipeline's alerts (backup_functions.alerts) and send them."""

from __future__ import annotations

from typing import Any

from backup_contracts import ledger
from backup_contracts.events import BackupMissing
from backup_contracts.fleet import Fleet
from backup_functions import alerts
from backup_functions.alert_kinds import WAL_KINDS
from backup_functions.ledger.outbox import Owed
from backup_functions.ports import Courier, EventPublisher, Notifier, alert_entry, event_entry
from backup_functions.watchdog.ports import Notice

_DETAIL_TEXT = ("stage", "error", "stderr_tail", "run_id")


def _agent_for(notice: Notice, fleet: Fleet | None) -> str:
    if notice.agent:
        return notice.agent
    if fleet is not None and notice.target:
        try:
            return fleet.target(notice.target)[0].name
        except KeyError:
            pass
    return "unknown-agent"


def situation(notice: Notice, pipeline: str, fleet: Fleet | None = None) -> alerts.Situation:
    """The alerts.Situation for a notice; details recorded on the incident fill error fields."""
    details: dict[str, Any] = notice.details
    deadline = notice.deadline
    if deadline is None and notice.kind in (alerts.NOT_STARTED, alerts.STUCK) and details.get("watch_deadline"):
        deadline = ledger.parse_iso(str(details["watch_deadline"]))
    exit_code = details.get("exit_code")
    problems = details.get("problems") or ()
    text = {name: str(details[name]) for name in _DETAIL_TEXT if details.get(name)}
    return alerts.Situation(
        pipeline=pipeline,
        agent=_agent_for(notice, fleet),
        target=notice.target,
        since=notice.since,
        now=notice.now,
        last_good_at=notice.last_good_at,
        last_good_run_id=notice.last_good_run_id,
        last_good_bytes=notice.last_good_bytes,
        rpo=notice.rpo,
        job_id=notice.job_id,
        run_id=text.get("run_id"),
        deadline=deadline,
        stage=text.get("stage"),
        exit_code=int(exit_code) if exit_code is not None else None,
        error=text.get("error"),
        stderr_tail=text.get("stderr_tail"),
        problems=tuple(str(p) for p in problems),
        notify_count=notice.notify_count,
        extra={
            **({name: details[name] for name in details} if notice.kind in WAL_KINDS else {}),
            **notice.extra,
            **({"resolution": notice.resolution} if notice.resolution else {}),
            **_note(notice, fleet),
        },
    )


def _note(notice: Notice, fleet: Fleet | None) -> dict[str, str]:
    """What a missing backup means for a target that counts only backups copied off-site."""
    if notice.kind != alerts.RPO or fleet is None or notice.target is None:
        return {}
    try:
        _, target = fleet.target(notice.target)
    except KeyError:
        return {}
    if not target.rpo_needs_offsite:
        return {}
    return {
        "note": "this target counts a backup only once its off-site copy is verified (rpo_needs_offsite):"
        " a newer backup without a copy does not count; see its OFF-SITE column"
    }


def alert_for(notice: Notice, pipeline: str, fleet: Fleet | None = None) -> alerts.Alert:
    return alerts.build(notice.kind, situation(notice, pipeline, fleet), notice.phase)


def backup_missing(notice: Notice, agent: str) -> BackupMissing | None:
    """The ``Backup Missing`` event of a newly opened RPO incident (None for any other notice)."""
    if notice.kind != alerts.RPO or notice.phase != "open" or notice.target is None:
        return None
    return BackupMissing(
        target=notice.target,
        agent=agent,
        problem="no good backup within RPO",
        since=notice.since,
        last_good_at=notice.last_good_at,
    )


class AlertNotifier:
    """Sends each notice as the pipeline's alert through the ``Notifier`` port (SNS in the Lambda), and
    announces a newly missing backup as a ``Backup Missing`` event on the bus for other consumers.

    Both are owed by the write that opens the incident (``owed``) and sent one by one (``deliver``), so
    an alert that fails after the event went out is sent by the next tick without the event again.
    """

    def __init__(
        self, notifier: Notifier, pipeline: str, fleet: Fleet | None = None, events: EventPublisher | None = None
    ) -> None:
        self._notifier = notifier
        self._pipeline = pipeline
        self._fleet = fleet
        self._events = events

    def owed(self, notice: Notice, *, id: str) -> dict[str, Owed]:
        entries = {
            "alert": alert_entry(alert_for(notice, self._pipeline, self._fleet), id=id, at=notice.now, by="tick")
        }
        missing = backup_missing(notice, _agent_for(notice, self._fleet))
        if missing is not None and self._events is not None:
            entries["event"] = event_entry(missing, id=f"{id}:event", at=notice.now, by="tick")
        return entries

    def deliver(self, entry: Owed) -> None:
        Courier(notifier=self._notifier, events=self._events).deliver(entry)

    def send(self, notice: Notice) -> None:
        """Send a notice at once (nothing owed): what ``owed`` would record, delivered."""
        for _, entry in sorted(self.owed(notice, id="direct").items()):
            self.deliver(entry)
