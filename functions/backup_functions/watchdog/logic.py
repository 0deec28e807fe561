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

One incident per root cause (``causes.py``): a silent agent, an agent whose jobs never start, most agents
silent at once, or a stalled dispatcher opens one incident listing what it affects; the per-target
incidents it explains are recorded (``suppressed_by``), not paged, until it resolves. Targets and agents
no longer in the fleet file have their incidents closed with one final notice and their watches cleared
(``removal.py``). A silence holds the pages of what it matches until it ends, then they page once
(``silencing.py``).

Nothing here reads the whole fleet: the cost follows the number of overdue things and open incidents.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from backup_contracts import ledger as keys
from backup_functions import alerts
from backup_functions.ledger import Incident, SilenceItem, TargetState
from backup_functions.ledger.outbox import Owed
from backup_functions.watchdog import causes, removal, silencing
from backup_functions.watchdog.causes import Cause, Correlation, FleetView
from backup_functions.watchdog.model import TARGET_INCIDENT_KINDS, WATCH_INCIDENT_KINDS, OverdueItem
from backup_functions.watchdog.ports import (
    RESOLUTIONS,
    SUPERSEDED,
    Notice,
    Notifier,
    Phase,
    TickReport,
    WatchdogError,
    WatchdogLedger,
    incident_notice,
    is_superseded,
    reminder_due,
    state_facts,
    targets_to_read,
)

__all__ = ["Watchdog"]  # its values and ports: watchdog.ports

logger = logging.getLogger(__name__)


class Watchdog:
    """One watchdog; ``tick(now)`` is idempotent and safe to run concurrently with itself."""

    def __init__(
        self,
        store: WatchdogLedger,
        notifier: Notifier,
        *,
        reminder_interval: timedelta,
        fleet: FleetView | None = None,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._reminder_interval = reminder_interval
        self._fleet = fleet  # without it: no correlation and no decommissioning (every subject is kept)

    def tick(self, now: datetime) -> TickReport:
        report = TickReport(now=now)
        self._book = silencing.SilenceBook(self._store.silences_in_force, self._fleet, now)
        due = self._store.overdue_items(now)
        ended = [item for item in due if isinstance(item, SilenceItem)]
        items = [OverdueItem(item) for item in due if not isinstance(item, SilenceItem)]
        incidents: dict[str, Incident] = {}
        for known in self._store.open_incidents():
            if known.due(now):  # owed by an earlier tick (or, after the grace, by the audit)
                self._settle(known, report, only=known.due(now))
            if known.resolved_at is None:
                incidents[known.sk] = known
        report.overdue_items = len(items)
        report.open_incidents = len(incidents)

        if self._fleet is not None:
            for gone in removal.removals(incidents.values(), self._fleet):
                self._remove(gone, now, report)
                for closed in (gone.carrier, *gone.others):
                    incidents.pop(closed.sk, None)

        watched: list[OverdueItem] = []
        for item in items:
            if item.incident_kind is None:
                report.ignored.append(f"{item.pk}/{item.sk}:{item.watch_kind}")  # e.g. restore approvals
            elif self._fleet is not None and removal.is_removed(item.item, self._fleet):
                self._store.clear_item_watch(item.item, now=now, reason=removal.REMOVED)
            else:
                watched.append(item)

        states = self._store.target_states(targets_to_read(watched, incidents))
        for item in watched:
            if isinstance(item.item, TargetState):  # an overdue RPO watch is the target's state itself
                states.setdefault(item.name, item.item)
        for silence in ended:
            self._end_silence(silence, incidents, states, now, report)

        overdue: dict[str, OverdueItem] = {}
        for item in sorted(watched, key=lambda i: i.deadline):
            if item.job is not None and is_superseded(item, states.get(item.name)):
                self._store.clear_watch(item.job, now=now, reason=SUPERSEDED)
                report.superseded.append(f"{item.pk}/{item.sk}")
                continue
            overdue.setdefault(item.incident_sk, item)  # earliest deadline represents the incident

        report.overdue_targets = len({i.name for i in overdue.values() if i.incident_kind in TARGET_INCIDENT_KINDS})
        report.silent_agents = len({i.name for i in overdue.values() if i.incident_kind == "heartbeat"})

        found = self._correlate(overdue, now)
        for sk, item in overdue.items():
            if sk in found.causes:
                continue  # an agent's heartbeat: the cause's incident, below
            incident = incidents.get(sk)
            state = states.get(item.target) if item.target else None
            held_by = found.explained.get(sk)
            if incident is None:
                self._open(item, state, now, report, suppressed_by=held_by)
            elif held_by is None and reminder_due(incident, now, self._reminder_interval):
                self._remind(incident, item, state, now, report)

        for sk, cause in found.causes.items():
            self._cause(cause, incidents.get(sk), found, now, report)

        for sk, incident in incidents.items():
            if sk in overdue or sk in found.causes:
                continue
            target = incident.about_target
            state = states.get(target) if target else None
            if (
                silencing.never_paged_while_held(incident)
                and incident.kind in WATCH_INCIDENT_KINDS | alerts.CAUSE_KINDS
            ):
                self._store.resolve_incident(incident, {}, now)  # caught up while held: recorded, not paged
            elif incident.kind in alerts.CAUSE_KINDS and target is None:
                held = [i for i in incidents.values() if i.suppressed_by == sk]
                extra = causes.recovery(incident, held, overdue)
                self._resolve(incident, None, now, report, RESOLUTIONS.get(incident.kind, "recovered"), extra=extra)
            elif incident.kind in WATCH_INCIDENT_KINDS:
                self._resolve(incident, state, now, report, RESOLUTIONS.get(incident.kind, "no longer overdue"))
            elif state is not None and state.last_good_at is not None and state.last_good_at > incident.opened_at:
                if silencing.never_paged_while_held(incident):
                    self._store.resolve_incident(incident, {}, now)  # nobody was told: nothing to take back
                else:
                    self._resolve(incident, state, now, report, "a newer backup succeeded")
            elif incident.last_notified_at is None and incident.silenced_by is None:
                # Its first alert is the audit's to send (an SQS redelivery retries it); sending it
                # here could race the audit's own publish.
                continue
            elif reminder_due(incident, now, self._reminder_interval):
                self._remind(incident, None, state, now, report)

        if report.errors:
            raise WatchdogError("; ".join(report.errors))
        return report

    # ------------------------------------------------------------------ steps

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

    def _correlate(self, overdue: dict[str, OverdueItem], now: datetime) -> Correlation:
        if self._fleet is None:
            return Correlation()
        heartbeats = self._store.agent_states(causes.agents_to_read(overdue, self._fleet))
        last = self._store.last_dispatch()
        first = self._store.watching_since(now) if last is None else None  # a dispatcher that never ran
        return causes.correlate(
            overdue, self._fleet, heartbeats=heartbeats, last_dispatch=last, now=now, watching_since=first
        )

    def _cause_extra(self, kind: str, subject: str, details: dict[str, Any]) -> dict[str, Any]:
        """A cause's notice facts, with each affected target's RPO countdown (read only when it notifies)."""
        targets = sorted(details.get("targets") or ())[: causes.MAX_STATES_READ]
        rows = causes.affected_rows(targets, self._store.target_states(targets))
        return {**causes.presentation(kind, subject, details), "affected": rows}

    def _cause(
        self, cause: Cause, incident: Incident | None, found: Correlation, now: datetime, report: TickReport
    ) -> None:
        held_by = found.explained.get(cause.sk)  # an agent's cause under the pipeline's
        details = causes.stored_facts(cause)
        if incident is None:
            attributes = {"agent": cause.agent, "since": cause.since, "opened_by": "watchdog", "details": details}
            notice = Notice(
                phase="open",
                kind=cause.kind,
                subject=cause.subject,
                target=None,
                agent=cause.agent,
                since=cause.since,
                now=now,
                opened_at=now,
                extra={} if held_by else self._cause_extra(cause.kind, cause.subject, details),
            )
            self._open_incident(cause.sk, notice, attributes, report, suppressed_by=held_by)
            return
        if (grown := causes.grown_facts(incident.details, cause)) is not None:
            self._store.update_details(incident, grown)  # only when it explains more than it recorded
            incident = incident.model_copy(update={"details": grown})
        if held_by is None and causes.reminder_due(incident, now, self._reminder_interval):
            extra = self._cause_extra(incident.kind, incident.subject, {**incident.details, **details})
            self._remind(incident, None, None, now, report, extra=extra)

    def _remove(self, gone: removal.Removal, now: datetime, report: TickReport) -> None:
        """Close a removed subject's incidents with one final notice (see removal.py for the order)."""
        if gone.others and not gone.recorded and not self._store.update_details(gone.carrier, gone.details()):
            return
        for other in gone.others:
            self._store.resolve_incident(other, {}, now)  # silently: the carrier's notice lists it
        carrier = gone.carrier
        notice = Notice(
            phase="resolved",
            kind=alerts.REMOVED,
            subject=gone.unit,
            target=gone.unit.removeprefix("target:") if gone.unit.startswith("target:") else None,
            agent=carrier.about_agent,
            since=carrier.since or carrier.opened_at,
            now=now,
            opened_at=carrier.opened_at,
            notify_count=carrier.notify_count,
            resolution=removal.REMOVED,
            extra=gone.extra(),
        )
        owed = self._owed(notice, carrier.sk, carrier.opened_at, carrier.notify_count)
        if self._store.resolve_incident(carrier, owed, now) and self._settle(
            carrier.model_copy(update={"owed": owed, "resolved_at": now}), report
        ):
            report.removed.append(gone.unit)

    def _open(
        self,
        item: OverdueItem,
        state: TargetState | None,
        now: datetime,
        report: TickReport,
        *,
        suppressed_by: str | None = None,
    ) -> None:
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
            **state_facts(state),
            details=item.details(),
        )
        self._open_incident(item.incident_sk, notice, attributes, report, suppressed_by=suppressed_by)

    def _open_incident(
        self, sk: str, notice: Notice, attributes: dict[str, Any], report: TickReport, *, suppressed_by: str | None
    ) -> None:
        """Open the incident owing its first alert, or, held by a cause, recorded without one."""
        silence = None if suppressed_by else self._book.holding(notice.kind, notice.target, notice.agent)
        if suppressed_by is not None:
            attributes = {**attributes, "suppressed_by": suppressed_by}
        if silence is not None:
            attributes = {**attributes, "silenced_by": silence.silence_id}
        notify = suppressed_by is None and silence is None
        owed = self._owed(notice, sk, notice.now, 1) if notify else {}
        claim = self._store.open_incident(notice.subject, notice.kind, notice.now, attributes, owed, notify=notify)
        if claim is None:
            logger.info("incident %s was opened by a concurrent tick; not alerting twice", sk)
            return
        if not notify:
            (report.suppressed if suppressed_by else report.silenced).append(sk)
            return
        opened = Incident.model_validate(
            {"pk": keys.INCIDENTS_PK, "sk": sk, "subject": notice.subject, "kind": notice.kind, "opened_at": notice.now}
        ).model_copy(update={"owed": owed})
        if self._settle(opened, report):
            report.opened.append(sk)

    def _remind(
        self,
        incident: Incident,
        item: OverdueItem | None,
        state: TargetState | None,
        now: datetime,
        report: TickReport,
        *,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Page about ``incident`` again (or for the first time) unless a silence holds it; True when sent."""
        if (silence := self._book.holding_incident(incident)) is not None:
            if incident.silenced_by != silence.silence_id:
                self._store.hold(incident, silence.silence_id)
            report.silenced.append(incident.sk)
            return False
        phase: Phase = "reminder" if incident.last_notified_at is not None else "open"
        job_id = (item.job_id if item else None) or incident.job_id
        notice = incident_notice(incident, state, now, phase, job_id=job_id, extra=extra or {})
        owed = self._owed(notice, incident.sk, incident.opened_at, incident.notify_count + 1)
        if self._store.claim_notification(incident, now, owed) is None:
            logger.info("reminder for %s already sent by a concurrent tick", incident.sk)
            return False
        if self._settle(incident.model_copy(update={"owed": owed}), report):
            report.reminded.append(incident.sk)
        return True

    def _end_silence(
        self,
        silence: SilenceItem,
        incidents: dict[str, Incident],
        states: dict[str, TargetState],
        now: datetime,
        report: TickReport,
    ) -> None:
        """Page once what the ended ``silence`` still holds (unless another holds it), then clear its watch."""
        for sk, incident in list(incidents.items()):
            if incident.silenced_by != silence.silence_id:
                continue
            extra = silencing.ended_note(silence)
            if incident.kind in alerts.CAUSE_KINDS:
                extra = {**self._cause_extra(incident.kind, incident.subject, incident.details), **extra}
            state = states.get(incident.about_target or "")
            if self._remind(incident, None, state, now, report, extra=extra):
                paged = {"last_notified_at": now, "silenced_by": None, "notify_count": incident.notify_count + 1}
                incidents[sk] = incident.model_copy(update=paged)
        if not report.errors and self._store.end_silence(silence, now):
            report.silences_ended.append(silence.silence_id)

    def _resolve(
        self,
        incident: Incident,
        state: TargetState | None,
        now: datetime,
        report: TickReport,
        resolution: str,
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if extra is not None:
            extra = {**causes.presentation(incident.kind, incident.subject, incident.details), **extra}
        notice = incident_notice(
            incident, state, now, "resolved", job_id=incident.job_id, resolution=resolution, extra=extra or {}
        )
        owed = self._owed(notice, incident.sk, incident.opened_at, incident.notify_count)
        if not self._store.resolve_incident(incident, owed, now):
            logger.info("incident %s already resolved by a concurrent tick", incident.sk)
            return
        if self._settle(incident.model_copy(update={"owed": owed, "resolved_at": now}), report):
            report.resolved.append(incident.sk)
