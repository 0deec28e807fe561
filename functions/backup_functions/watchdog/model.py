"""What the watchdog reasons about: overdue ledger items (typed) and the incidents they open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backup_contracts import ledger
from backup_functions.ledger import (
    AgentState,
    JobRow,
    OffsiteCopy,
    WatchedItem,
    agent_subject,
    parse_item,
    target_subject,
)
from backup_functions.watchdog import wal

# watch_kind (on the ledger item) → incident kind (in the INCIDENTS partition).
WATCH_KIND_TO_INCIDENT = {
    "rpo": "rpo",  # target state: no good backup within the RPO
    "start": "start",  # job row: dispatched but never started
    "end": "end",  # job row: started but never ended (stuck)
    "heartbeat": "heartbeat",  # agent state: no heartbeat within the timeout
    "offsite": "offsite",  # off-site copy: a good backup's copy not verified in the vault within the lag
    "wal-lag": "wal-lag",  # WAL archive summary: the server has WAL the archive lacks, older than wal_rpo
    "wal-gap": "wal-gap",  # WAL archive gap: a segment missing while later ones are archived, past wal_rpo
}
WATCH_INCIDENT_KINDS = frozenset(WATCH_KIND_TO_INCIDENT.values())
# Incidents the watchdog itself opens and closes. Any other kind (e.g. a failed backup or an object
# that did not verify, opened by the audit function at once) is reminded about, and resolved only when
# its target has a good backup newer than the incident.
TARGET_INCIDENT_KINDS = frozenset({"rpo", "start", "end"})
DETAIL_FIELDS = ("issued_at", "started_at", "deadline", "run_id", "trigger", "last_heartbeat_at", "version")


@dataclass(frozen=True)
class OverdueItem:
    """One ledger item whose watch deadline has passed (from the by-watch-deadline index)."""

    item: WatchedItem

    @classmethod
    def from_item(cls, raw: dict[str, Any]) -> OverdueItem:
        item = parse_item(raw)
        if not isinstance(item, WatchedItem):
            raise TypeError(f"{raw.get(ledger.PK)}/{raw.get(ledger.SK)} is not a watched item")
        return cls(item)

    @property
    def pk(self) -> str:
        return self.item.pk

    @property
    def sk(self) -> str:
        return self.item.sk

    @property
    def watch_kind(self) -> str:
        return self.item.watch_kind or ""

    @property
    def deadline(self) -> datetime:
        assert self.item.watch_deadline is not None  # noqa: S101 - the index holds only items with one
        return self.item.watch_deadline

    @property
    def incident_kind(self) -> str | None:
        if isinstance(self.item, OffsiteCopy) and not self.item.late:
            return None  # only its next check is due (backup_functions.offsite), not the copy itself
        return WATCH_KIND_TO_INCIDENT.get(self.watch_kind)

    @property
    def name(self) -> str:
        """The target (for rpo/start/end) or the agent (for heartbeat) the item is about."""
        return self.item.name

    @property
    def subject(self) -> str:
        """The incident subject, as the rest of the pipeline names it ("target:x" / "agent:y")."""
        return agent_subject(self.name) if isinstance(self.item, AgentState) else target_subject(self.name)

    @property
    def incident_sk(self) -> str:
        return ledger.incident_sk(self.subject, self.incident_kind or self.watch_kind)

    @property
    def target(self) -> str | None:
        return None if isinstance(self.item, AgentState) else self.name

    @property
    def agent(self) -> str | None:
        return self.name if isinstance(self.item, AgentState) else getattr(self.item, "agent", None)

    @property
    def job(self) -> JobRow | None:
        return self.item if isinstance(self.item, JobRow) else None

    @property
    def job_id(self) -> str | None:
        return self.job.job_id if self.job else None

    def details(self) -> dict[str, Any]:
        """What the incident records about the item (as the stored text; an off-site copy's problems)."""
        details: dict[str, Any] = {}
        for name in DETAIL_FIELDS:
            value = getattr(self.item, name, None)
            if value is not None:
                details[name] = ledger.iso(value) if isinstance(value, datetime) else str(value)
        details["watch_deadline"] = ledger.iso(self.deadline)
        if isinstance(self.item, OffsiteCopy) and self.item.problems:
            details["problems"] = list(self.item.problems)  # what the last check found
        return details | wal.details(self.item)
