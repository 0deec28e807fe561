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

Nothing here reads the whole fleet: the cost follows the number of overdue things and open incidents.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from backup_contracts import ledger
from backup_functions.watchdog.model import (
    TARGET_INCIDENT_KINDS,
    WATCH_INCIDENT_KINDS,
    Incident,
    OverdueItem,
)

logger = logging.getLogger(__name__)

Phase = Literal["open", "reminder", "resolved"]  # as backup_functions.alerts
SUPERSEDED = "superseded by a newer good backup"


class WatchdogLedger(Protocol):
    def overdue_items(self, now: datetime) -> list[dict[str, Any]]: ...
    def open_incidents(self) -> list[dict[str, Any]]: ...
    def target_states(self, targets: Iterable[str]) -> dict[str, dict[str, Any]]: ...
    def open_incident(self, subject: str, kind: str, opened_at: datetime, attributes: dict[str, Any]) -> bool: ...
    def claim_notification(self, sk: str, previous: str | None, now: datetime) -> bool: ...
    def release_notification(self, sk: str, claimed: datetime, previous: str | None) -> None: ...
    def resolve_incident(self, sk: str, opened_at: str | None) -> bool: ...
    def clear_watch(self, pk: str, sk: str, *, watch_kind: str, deadline: str, now: datetime, reason: str) -> bool: ...


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
    def send(self, notice: Notice) -> None: ...


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


def _job_start(item: OverdueItem) -> datetime | None:
    return item.moment("issued_at") or item.moment("started_at")


def is_superseded(item: OverdueItem, state: dict[str, Any] | None) -> bool:
    """A job watch is superseded when its target has a good backup newer than the job was issued."""
    if item.watch_kind not in ("start", "end") or state is None:
        return False
    issued = _job_start(item)
    last_good = state.get("last_good_at")
    if issued is None or not last_good:
        return False
    return ledger.parse_iso(str(last_good)) > issued


def reminder_due(incident: Incident, now: datetime, interval: timedelta) -> bool:
    if incident.last_notified_at is None:
        return True  # never notified (or the last send failed and was released)
    return incident.last_notified_at + interval <= now


def _last_good(state: dict[str, Any] | None, item: OverdueItem | None) -> datetime | None:
    for source in (state, item.attributes if item else None):
        if source and source.get("last_good_at"):
            return ledger.parse_iso(str(source["last_good_at"]))
    return None


def _rpo(state: dict[str, Any] | None, item: OverdueItem | None) -> timedelta | None:
    for source in (state, item.attributes if item else None):
        if source and source.get("rpo_s"):
            return timedelta(seconds=int(source["rpo_s"]))
    return None


def _state_facts(state: dict[str, Any] | None, item: OverdueItem | None) -> dict[str, Any]:
    """Notice fields taken from the target state (or the overdue state item itself)."""
    source = state or (item.attributes if item and item.watch_kind == "rpo" else None) or {}
    size = source.get("last_good_bytes")
    return {
        "last_good_at": _last_good(state, item),
        "last_good_run_id": str(source["last_good_run_id"]) if source.get("last_good_run_id") else None,
        "last_good_bytes": int(size) if size is not None else None,
        "rpo": _rpo(state, item),
    }


def _details(item: OverdueItem) -> dict[str, Any]:
    keep = ("issued_at", "started_at", "deadline", "run_id", "trigger", "last_heartbeat_at", "version")
    details = {name: str(item.attributes[name]) for name in keep if item.attributes.get(name) is not None}
    details["watch_deadline"] = ledger.iso(item.deadline)
    return details


class Watchdog:
    """One watchdog; ``tick(now)`` is idempotent and safe to run concurrently with itself."""

    def __init__(self, store: WatchdogLedger, notifier: Notifier, *, reminder_interval: timedelta) -> None:
        self._store = store
        self._notifier = notifier
        self._reminder_interval = reminder_interval

    def tick(self, now: datetime) -> TickReport:
        report = TickReport(now=now)
        items = [OverdueItem.from_item(raw) for raw in self._store.overdue_items(now)]
        incidents = {inc.sk: inc for inc in (Incident.from_item(raw) for raw in self._store.open_incidents())}
        report.overdue_items = len(items)
        report.open_incidents = len(incidents)

        watched: list[OverdueItem] = []
        for item in items:
            if item.incident_kind is None:
                report.ignored.append(f"{item.pk}/{item.sk}:{item.watch_kind}")  # e.g. restore approvals
            else:
                watched.append(item)

        states = self._store.target_states(self._targets_to_read(watched, incidents))
        rpo_states = {i.name: i.attributes for i in watched if i.watch_kind == "rpo"}
        for name, attributes in rpo_states.items():
            states.setdefault(name, attributes)

        overdue: dict[str, OverdueItem] = {}
        for item in sorted(watched, key=lambda i: i.deadline):
            if item.target and is_superseded(item, states.get(item.target)):
                self._store.clear_watch(
                    item.pk,
                    item.sk,
                    watch_kind=item.watch_kind,
                    deadline=str(item.attributes[ledger.WATCH_DEADLINE]),
                    now=now,
                    reason=SUPERSEDED,
                )
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
            state = states.get(incident.target) if incident.target else None
            last_good = _last_good(state, None)
            if incident.kind in WATCH_INCIDENT_KINDS:
                self._resolve(incident, state, now, report, self._resolution(incident.kind))
            elif last_good is not None and last_good > incident.opened_at:
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
        wanted |= {inc.target for inc in incidents.values() if inc.target}
        return wanted - have_rpo

    def _notify(self, notice: Notice, sk: str, claimed: datetime, previous: str | None, report: TickReport) -> bool:
        try:
            self._notifier.send(notice)
        except Exception as exc:  # any send failure: release the claim, retry next tick
            logger.exception("could not send %s notice for %s", notice.phase, sk)
            self._store.release_notification(sk, claimed, previous)
            report.errors.append(f"{sk}: {type(exc).__name__}: {exc}")
            return False
        return True

    def _open(self, item: OverdueItem, state: dict[str, Any] | None, now: datetime, report: TickReport) -> None:
        kind = item.incident_kind or item.watch_kind
        attributes: dict[str, Any] = {
            "target": item.target,
            "agent": item.agent,
            "job_id": item.job_id,
            "since": ledger.iso(item.deadline),
            "opened_by": "watchdog",
            "source_pk": item.pk,
            "source_sk": item.sk,
            "details": _details(item),
        }
        if not self._store.open_incident(item.subject, kind, now, attributes):
            logger.info("incident %s was opened by a concurrent tick; not alerting twice", item.incident_sk)
            return
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
            **_state_facts(state, item),
            details=_details(item),
        )
        if self._notify(notice, item.incident_sk, now, None, report):
            report.opened.append(item.incident_sk)

    def _remind(
        self,
        incident: Incident,
        item: OverdueItem | None,
        state: dict[str, Any] | None,
        now: datetime,
        report: TickReport,
    ) -> None:
        previous = incident.raw_last_notified_at
        if not self._store.claim_notification(incident.sk, previous, now):
            logger.info("reminder for %s already sent by a concurrent tick", incident.sk)
            return
        since_text = incident.get("since")
        notice = Notice(
            phase="reminder" if previous is not None else "open",
            kind=incident.kind,
            subject=incident.subject,
            target=incident.target,
            agent=incident.agent,
            since=ledger.parse_iso(since_text) if since_text else incident.opened_at,
            now=now,
            opened_at=incident.opened_at,
            job_id=(item.job_id if item else None) or incident.get("job_id"),
            **_state_facts(state, item),
            notify_count=incident.notifications,
            details=dict(incident.attributes.get("details") or {}),
        )
        if self._notify(notice, incident.sk, now, previous, report):
            report.reminded.append(incident.sk)

    @staticmethod
    def _resolution(kind: str) -> str:
        return {
            "rpo": "a good backup is within the RPO again",
            "start": "the job started, or a newer good backup superseded it",
            "end": "the run ended, or a newer good backup superseded it",
            "heartbeat": "the agent is sending heartbeats again",
        }.get(kind, "no longer overdue")

    def _resolve(
        self,
        incident: Incident,
        state: dict[str, Any] | None,
        now: datetime,
        report: TickReport,
        resolution: str,
    ) -> None:
        if not self._store.resolve_incident(incident.sk, incident.get("opened_at")):
            logger.info("incident %s already resolved by a concurrent tick", incident.sk)
            return
        since_text = incident.get("since")
        notice = Notice(
            phase="resolved",
            kind=incident.kind,
            subject=incident.subject,
            target=incident.target,
            agent=incident.agent,
            since=ledger.parse_iso(since_text) if since_text else incident.opened_at,
            now=now,
            opened_at=incident.opened_at,
            job_id=incident.get("job_id"),
            **_state_facts(state, None),
            notify_count=incident.notifications,
            resolution=resolution,
            details=dict(incident.attributes.get("details") or {}),
        )
        try:
            self._notifier.send(notice)
        except Exception as exc:  # the incident is closed; report the lost message loudly
            logger.exception("incident %s resolved but the resolved message could not be sent", incident.sk)
            report.errors.append(f"{incident.sk}: resolved message not sent: {type(exc).__name__}: {exc}")
            return
        report.resolved.append(incident.sk)
