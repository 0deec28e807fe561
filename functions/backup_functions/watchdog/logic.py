"""The watchdog's domain logic: expected vs actual, one tick at a time, on an injected clock.

A tick at ``now``:

1. reads every ledger item whose ``watch_deadline <= now`` (the sparse deadline index, one query per
   shard) and every open incident (one small partition);
2. drops job watches a newer good backup has superseded (their message expired or was lost);
3. opens an incident for every overdue subject that has none (conditional put: two overlapping ticks
   send one alert), reminds about open incidents every ``reminder_interval`` (conditional update on
   ``last_notified_at``), and resolves incidents whose subject is no longer overdue (conditional
   delete, then a "resolved" message).

Incidents opened by others (a failed backup, an object that did not verify — the audit function
alerts on those at once) are reminded about, and resolved only once their target has a good backup
newer than the incident.

Every notice is owed by the write that opens, reminds about or resolves its incident (the ledger's
outbox, ``ledger/outbox.py``): the alert and, for a newly missing backup, the ``Backup Missing`` event,
each sent and then cleared. A tick first sends what earlier ticks (or, after ``outbox.GRACE``, the audit)
left owed — as stored — so a failed publish is completed once and a sent event is not sent again.

Nothing here reads the whole fleet: the cost follows the number of overdue things and open incidents.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from backup_contracts import ledger as keys
from backup_functions.ledger import Claim, Incident, JobRow, TargetState, WatchedItem
from backup_functions.ledger.outbox import Owed
from backup_functions.watchdog.model import TARGET_INCIDENT_KINDS, WATCH_INCIDENT_KINDS, OverdueItem

logger = logging.getLogger(__name__)

Phase = Literal["open", "reminder", "resolved"]  # as backup_functions.alerts
SUPERSEDED = "superseded by a newer good backup"
RESOLUTIONS = {
    "rpo": "a good backup is within the RPO again",
    "start": "the job started, or a newer good backup superseded it",
    "end": "the run ended, or a newer good backup superseded it",
    "heartbeat": "the agent is sending heartbeats again",
}


class WatchdogLedger(Protocol):
    def overdue_items(self, now: datetime) -> list[WatchedItem]: ...
    def open_incidents(self) -> list[Incident]: ...
    def target_states(self, targets: Iterable[str]) -> dict[str, TargetState]: ...
    def open_incident(
        self, subject: str, kind: str, opened_at: datetime, attributes: dict[str, Any], owed: dict[str, Owed]
    ) -> Claim | None: ...
    def claim_notification(self, incident: Incident, now: datetime, owed: dict[str, Owed]) -> Claim | None: ...
    def resolve_incident(self, incident: Incident, owed: dict[str, Owed], now: datetime) -> bool: ...
    def settle(self, incident: Incident, name: str, entry: Owed, *, last: bool) -> bool: ...
    def clear_watch(self, row: JobRow, *, now: datetime, reason: str) -> bool: ...


@dataclass(frozen=True)
class Notice:
    """One message for the on-call engineer, before formatting."""

    phase: Phase
    kind: str  # rpo | start | end | heartbeat | <kinds opened by others, e.g. failed>
    subject: str
    target: str | None
    agent: str | None
    since: datetime  # when it became overdue (the deadline that passed), or when the incident opened
    now: datetime
    opened_at: datetime
    job_id: str | None = None
    last_good_at: datetime | None = None
    last_good_run_id: str | None = None
    last_good_bytes: int | None = None
    rpo: timedelta | None = None
    deadline: datetime | None = None
    notify_count: int = 0  # notifications sent for this incident before this one
    resolution: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    def owed(self, notice: Notice, *, id: str) -> dict[str, Owed]:
        """What the notice owes, each entry as it will be sent (the alert; maybe an event)."""
        ...

    def deliver(self, entry: Owed) -> None: ...


@dataclass
class TickReport:
    """What one tick saw and did; the handler turns it into metrics and a log line."""

    now: datetime
    overdue_items: int = 0
    overdue_targets: int = 0
    silent_agents: int = 0
    open_incidents: int = 0
    opened: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class WatchdogError(RuntimeError):
    """Some notifications could not be sent; they are retried by the next tick."""


def is_superseded(item: OverdueItem, state: TargetState | None) -> bool:
    """A job watch is superseded when its target has a good backup newer than the job was issued."""
    job = item.job
    if job is None or item.watch_kind not in ("start", "end") or state is None or state.last_good_at is None:
        return False
    issued = job.issued_at or job.started_at
    return issued is not None and state.last_good_at > issued


def reminder_due(incident: Incident, now: datetime, interval: timedelta) -> bool:
    if incident.last_notified_at is None:
        return True  # never notified (or the last send failed and was released)
    return incident.last_notified_at + interval <= now


def _state_facts(state: TargetState | None) -> dict[str, Any]:
    """Notice fields taken from the target state."""
    return {
        "last_good_at": state.last_good_at if state else None,
        "last_good_run_id": state.last_good_run_id if state else None,
        "last_good_bytes": state.last_good_bytes if state else None,
        "rpo": state.rpo if state else None,
    }


class Watchdog:
    """One watchdog; ``tick(now)`` is idempotent and safe to run concurrently with itself."""

    def __init__(self, store: WatchdogLedger, notifier: Notifier, *, reminder_interval: timedelta) -> None:
        self._store = store
        self._notifier = notifier
        self._reminder_interval = reminder_interval

    def tick(self, now: datetime) -> TickReport:
        report = TickReport(now=now)
        items = [OverdueItem(item) for item in self._store.overdue_items(now)]
        incidents: dict[str, Incident] = {}
        for known in self._store.open_incidents():
            if known.due(now):  # owed by an earlier tick (or, after the grace, by the audit)
                self._settle(known, report, only=known.due(now))
            if known.resolved_at is None:
                incidents[known.sk] = known
        report.overdue_items = len(items)
        report.open_incidents = len(incidents)

        watched: list[OverdueItem] = []
        for item in items:
            if item.incident_kind is None:
                report.ignored.append(f"{item.pk}/{item.sk}:{item.watch_kind}")  # e.g. restore approvals
            else:
                watched.append(item)

        states = self._store.target_states(self._targets_to_read(watched, incidents))
        for item in watched:
            if isinstance(item.item, TargetState):  # an overdue RPO watch is the target's state itself
                states.setdefault(item.name, item.item)

        overdue: dict[str, OverdueItem] = {}
        for item in sorted(watched, key=lambda i: i.deadline):
            if item.job is not None and is_superseded(item, states.get(item.name)):
                self._store.clear_watch(item.job, now=now, reason=SUPERSEDED)
                report.superseded.append(f"{item.pk}/{item.sk}")
                continue
            overdue.setdefault(item.incident_sk, item)  # earliest deadline represents the incident

        report.overdue_targets = len({i.name for i in overdue.values() if i.incident_kind in TARGET_INCIDENT_KINDS})
        report.silent_agents = len({i.name for i in overdue.values() if i.incident_kind == "heartbeat"})

        for sk, item in overdue.items():
            incident = incidents.get(sk)
            state = states.get(item.target) if item.target else None
            if incident is None:
                self._open(item, state, now, report)
            elif reminder_due(incident, now, self._reminder_interval):
                self._remind(incident, item, state, now, report)

        for sk, incident in incidents.items():
            if sk in overdue:
                continue
            target = incident.about_target
            state = states.get(target) if target else None
            if incident.kind in WATCH_INCIDENT_KINDS:
                self._resolve(incident, state, now, report, RESOLUTIONS.get(incident.kind, "no longer overdue"))
            elif state is not None and state.last_good_at is not None and state.last_good_at > incident.opened_at:
                self._resolve(incident, state, now, report, "a newer backup succeeded")
            elif incident.last_notified_at is None:
                # Its first alert is the audit's to send (an SQS redelivery retries it); sending it
                # here could race the audit's own publish.
                continue
            elif reminder_due(incident, now, self._reminder_interval):
                self._remind(incident, None, state, now, report)

        if report.errors:
            raise WatchdogError("; ".join(report.errors))
        return report

    # ------------------------------------------------------------------ steps

    @staticmethod
    def _targets_to_read(items: list[OverdueItem], incidents: dict[str, Incident]) -> set[str]:
        """Targets whose state this tick needs: not the fleet, only those with something open or overdue."""
        have_rpo = {i.name for i in items if i.watch_kind == "rpo"}
        wanted = {i.name for i in items if i.watch_kind in ("start", "end")}
        # Incidents opened by others resolve on a newer good backup; resolving an RPO incident
        # reports the new last good backup: both need the target's state.
        wanted |= {target for incident in incidents.values() if (target := incident.about_target)}
        return wanted - have_rpo

    def _settle(self, incident: Incident, report: TickReport, only: dict[str, Owed] | None = None) -> bool:
        """Send what ``incident`` owes (``only`` those), clearing each; a failure stays owed for the next tick."""
        owed = incident.owed
        remaining = set(owed)
        for name in sorted(only if only is not None else owed):
            try:
                self._notifier.deliver(owed[name])
                remaining.discard(name)
                self._store.settle(incident, name, owed[name], last=not remaining)
            except Exception as exc:  # any send failure: still owed, the next tick sends it
                logger.exception("could not send %s for %s; the next tick sends it", name, incident.sk)
                report.errors.append(f"{incident.sk}: {type(exc).__name__}: {exc}")
                return False
        return True

    def _owed(self, notice: Notice, sk: str, opened_at: datetime, count: int) -> dict[str, Owed]:
        return self._notifier.owed(notice, id=f"incident:{sk}:{keys.iso(opened_at)}:{notice.phase}:{count}")

    def _open(self, item: OverdueItem, state: TargetState | None, now: datetime, report: TickReport) -> None:
        kind = item.incident_kind or item.watch_kind
        attributes: dict[str, Any] = {
            "target": item.target,
            "agent": item.agent,
            "job_id": item.job_id,
            "since": item.deadline,
            "opened_by": "watchdog",
            "source_pk": item.pk,
            "source_sk": item.sk,
            "details": item.details(),
        }
        notice = Notice(
            phase="open",
            kind=kind,
            subject=item.subject,
            target=item.target,
            agent=item.agent,
            since=item.deadline,
            now=now,
            opened_at=now,
            job_id=item.job_id,
            **_state_facts(state),
            details=item.details(),
        )
        owed = self._owed(notice, item.incident_sk, now, 1)
        claim = self._store.open_incident(item.subject, kind, now, attributes, owed)
        if claim is None:
            logger.info("incident %s was opened by a concurrent tick; not alerting twice", item.incident_sk)
            return
        opened = Incident.model_validate(
            {"pk": keys.INCIDENTS_PK, "sk": item.incident_sk, "subject": item.subject, "kind": kind, "opened_at": now}
        ).model_copy(update={"owed": owed})
        if self._settle(opened, report):
            report.opened.append(item.incident_sk)

    def _incident_notice(
        self, incident: Incident, state: TargetState | None, now: datetime, phase: Phase, **extra: Any
    ) -> Notice:
        return Notice(
            phase=phase,
            kind=incident.kind,
            subject=incident.subject,
            target=incident.about_target,
            agent=incident.about_agent,
            since=incident.since or incident.opened_at,
            now=now,
            opened_at=incident.opened_at,
            **_state_facts(state),
            notify_count=incident.notify_count,
            details=dict(incident.details),
            **extra,
        )

    def _remind(
        self,
        incident: Incident,
        item: OverdueItem | None,
        state: TargetState | None,
        now: datetime,
        report: TickReport,
    ) -> None:
        phase: Phase = "reminder" if incident.last_notified_at is not None else "open"
        job_id = (item.job_id if item else None) or incident.job_id
        notice = self._incident_notice(incident, state, now, phase, job_id=job_id)
        owed = self._owed(notice, incident.sk, incident.opened_at, incident.notify_count + 1)
        if self._store.claim_notification(incident, now, owed) is None:
            logger.info("reminder for %s already sent by a concurrent tick", incident.sk)
            return
        if self._settle(incident.model_copy(update={"owed": owed}), report):
            report.reminded.append(incident.sk)

    def _resolve(
        self, incident: Incident, state: TargetState | None, now: datetime, report: TickReport, resolution: str
    ) -> None:
        notice = self._incident_notice(incident, state, now, "resolved", job_id=incident.job_id, resolution=resolution)
        owed = self._owed(notice, incident.sk, incident.opened_at, incident.notify_count)
        if not self._store.resolve_incident(incident, owed, now):
            logger.info("incident %s already resolved by a concurrent tick", incident.sk)
            return
        if self._settle(incident.model_copy(update={"owed": owed, "resolved_at": now}), report):
            report.resolved.append(incident.sk)
