"""The watchdog's ports and values: what it reads and writes (``WatchdogLedger``), what it sends
(``Notifier``), the notice before formatting, the tick's report, and the small rules it applies."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from backup_functions.ledger import AgentState, Claim, Incident, JobRow, SilenceItem, TargetState, WatchedItem
from backup_functions.ledger.outbox import Owed
from backup_functions.offsite.check import OffsiteReport
from backup_functions.watchdog.model import OverdueItem

Phase = Literal["open", "reminder", "resolved"]  # as backup_functions.alerts
SUPERSEDED = "superseded by a newer good backup"
RESOLUTIONS = {
    "rpo": "a good backup is within the RPO again",
    "start": "the job started, or a newer good backup superseded it",
    "end": "the run ended, or a newer good backup superseded it",
    "heartbeat": "the agent is sending heartbeats again",
    "offsite": "the off-site copy is verified in the vault",
    "jobs": "the agent's jobs start again",
    "agents": "most agents are sending heartbeats again",
    "dispatcher": "the dispatcher is running again",
    "vault": "off-site copies are verified in the vault again",
    "wal-lag": "the WAL archive keeps up with the server again",
    "wal-gap": "the missing WAL segment is archived, or a newer base backup starts after it",
}


class WatchdogLedger(Protocol):
    def overdue_items(self, now: datetime) -> list[WatchedItem]: ...
    def open_incidents(self) -> list[Incident]: ...
    def target_states(self, targets: Iterable[str]) -> dict[str, TargetState]: ...
    def open_incident(
        self,
        subject: str,
        kind: str,
        opened_at: datetime,
        attributes: dict[str, Any],
        owed: dict[str, Owed],
        *,
        notify: bool = True,
    ) -> Claim | None: ...
    def claim_notification(self, incident: Incident, now: datetime, owed: dict[str, Owed]) -> Claim | None: ...
    def resolve_incident(self, incident: Incident, owed: dict[str, Owed], now: datetime) -> bool: ...
    def settle(self, incident: Incident, name: str, entry: Owed, *, last: bool) -> bool: ...
    def clear_watch(self, row: JobRow, *, now: datetime, reason: str) -> bool: ...
    def clear_item_watch(self, item: WatchedItem, *, now: datetime, reason: str) -> bool: ...
    def agent_states(self, agents: Iterable[str]) -> dict[str, AgentState]: ...
    def last_dispatch(self) -> datetime | None: ...
    def watching_since(self, now: datetime) -> datetime: ...
    def update_details(self, incident: Incident, details: dict[str, Any]) -> bool: ...
    def silences_in_force(self, now: datetime) -> list[SilenceItem]: ...
    def hold(self, incident: Incident, silence_id: str) -> bool: ...
    def end_silence(self, silence: SilenceItem, now: datetime) -> bool: ...


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
    extra: dict[str, Any] = field(default_factory=dict)  # a cause's or a removal's facts (alerts.Situation.extra)


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
    suppressed: list[str] = field(default_factory=list)  # opened, held by a cause (not paged)
    silenced: list[str] = field(default_factory=list)  # would have paged, held by a silence
    silences_ended: list[str] = field(default_factory=list)  # silences whose end this tick completed
    removed: list[str] = field(default_factory=list)  # removals from the fleet announced (agent:/target:)
    ignored: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    offsite: OffsiteReport | None = None  # the off-site checks run before the tick (pipeline.offsite)


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


def state_facts(state: TargetState | None) -> dict[str, Any]:
    """Notice fields taken from the target state."""
    return {
        "last_good_at": state.last_good_at if state else None,
        "last_good_run_id": state.last_good_run_id if state else None,
        "last_good_bytes": state.last_good_bytes if state else None,
        "rpo": state.rpo if state else None,
    }


def targets_to_read(items: list[OverdueItem], incidents: dict[str, Incident]) -> set[str]:
    """Targets whose state this tick needs: not the fleet, only those with something open or overdue."""
    have_rpo = {i.name for i in items if i.watch_kind == "rpo"}
    wanted = {i.name for i in items if i.watch_kind in ("start", "end")}
    # Incidents opened by others resolve on a newer good backup; resolving an RPO incident
    # reports the new last good backup: both need the target's state.
    wanted |= {target for incident in incidents.values() if (target := incident.about_target)}
    return wanted - have_rpo


def incident_notice(incident: Incident, state: TargetState | None, now: datetime, phase: Phase, **extra: Any) -> Notice:
    """The notice of an open incident, as recorded (its facts, the target's state)."""
    return Notice(
        phase=phase,
        kind=incident.kind,
        subject=incident.subject,
        target=incident.about_target,
        agent=incident.about_agent,
        since=incident.since or incident.opened_at,
        now=now,
        opened_at=incident.opened_at,
        **state_facts(state),
        notify_count=incident.notify_count,
        details=dict(incident.details),
        **extra,
    )
