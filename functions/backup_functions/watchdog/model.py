"""What the watchdog reasons about: overdue ledger items and open incidents, as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backup_contracts import ledger
from backup_functions.ledger import agent_subject, target_subject

# watch_kind (on the ledger item) → incident kind (in the INCIDENTS partition).
WATCH_KIND_TO_INCIDENT = {
    "rpo": "rpo",  # target state: no good backup within the RPO
    "start": "start",  # job row: dispatched but never started
    "end": "end",  # job row: started but never ended (stuck)
    "heartbeat": "heartbeat",  # agent state: no heartbeat within the timeout
}
WATCH_INCIDENT_KINDS = frozenset(WATCH_KIND_TO_INCIDENT.values())
# Incidents the watchdog itself opens and closes. Any other kind (e.g. a failed backup or an object
# that did not verify, opened by the audit function at once) is reminded about, and resolved only when
# its target has a good backup newer than the incident.
TARGET_INCIDENT_KINDS = frozenset({"rpo", "start", "end"})


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return str(value) if value is not None else None


def _moment(item: dict[str, Any], name: str) -> datetime | None:
    value = item.get(name)
    if not value:
        return None
    try:
        return ledger.parse_iso(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class OverdueItem:
    """One ledger item whose watch_deadline has passed (from the by-watch-deadline index)."""

    pk: str
    sk: str
    watch_kind: str
    deadline: datetime
    attributes: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> OverdueItem:
        return cls(
            pk=str(item[ledger.PK]),
            sk=str(item[ledger.SK]),
            watch_kind=str(item.get(ledger.WATCH_KIND, "")),
            deadline=ledger.parse_iso(str(item[ledger.WATCH_DEADLINE])),
            attributes=item,
        )

    @property
    def incident_kind(self) -> str | None:
        return WATCH_KIND_TO_INCIDENT.get(self.watch_kind)

    @property
    def name(self) -> str:
        """The target (for rpo/start/end) or the agent (for heartbeat) the item is about."""
        _, _, name = self.pk.partition("#")
        return name

    @property
    def subject(self) -> str:
        """The incident subject, as the rest of the pipeline names it ("target:x" / "agent:y")."""
        if self.pk.startswith("AGENT#"):
            return agent_subject(self.name)
        return target_subject(self.name)

    @property
    def incident_sk(self) -> str:
        return ledger.incident_sk(self.subject, self.incident_kind or self.watch_kind)

    @property
    def target(self) -> str | None:
        return self.name if self.pk.startswith("TARGET#") else None

    @property
    def agent(self) -> str | None:
        if self.pk.startswith("AGENT#"):
            return self.name
        return _text(self.attributes, "agent")

    @property
    def job_id(self) -> str | None:
        if self.sk.startswith(ledger.JOB_SK_PREFIX):
            return self.sk.removeprefix(ledger.JOB_SK_PREFIX)
        return None

    def get(self, name: str) -> str | None:
        return _text(self.attributes, name)

    def moment(self, name: str) -> datetime | None:
        return _moment(self.attributes, name)


@dataclass(frozen=True)
class Incident:
    """One OPEN incident (pk=INCIDENTS). Resolved incidents are deleted from the partition."""

    sk: str
    subject: str
    kind: str
    opened_at: datetime
    last_notified_at: datetime | None
    notifications: int
    attributes: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Incident:
        sk = str(item[ledger.SK])
        subject_default, _, kind_default = sk.rpartition("#")
        opened = _moment(item, "opened_at")
        return cls(
            sk=sk,
            subject=str(item.get("subject") or subject_default),
            kind=str(item.get("kind") or kind_default),
            opened_at=opened if opened is not None else ledger.parse_iso("2000-01-01T00:00:00.000000Z"),
            last_notified_at=_moment(item, "last_notified_at"),
            notifications=int(item.get("notify_count", 0) or 0),
            attributes=item,
        )

    @property
    def raw_last_notified_at(self) -> str | None:
        return _text(self.attributes, "last_notified_at")

    @property
    def target(self) -> str | None:
        if self.subject.startswith("agent:"):
            return None
        return _text(self.attributes, "target") or self.subject.removeprefix("target:")

    @property
    def agent(self) -> str | None:
        if self.subject.startswith("agent:"):
            return self.subject.removeprefix("agent:")
        return _text(self.attributes, "agent")

    def get(self, name: str) -> str | None:
        return _text(self.attributes, name)
