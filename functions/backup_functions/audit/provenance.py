"""Whether an agent's event may change the ledger at all: who sent it, about which target, and when.

Nothing is believed on an event's word (design rule 8). Before the audit records anything:

- **the sender**: the event's source (``backup.agent.<agent>``, which only that agent's IAM role may
  put) must name the agent the event claims to be from;
- **the target**: it must be in the fleet and belong to that agent (an agent never reports on another
  host's target, and a target the fleet does not know gets no ledger state);
- **the object's place**: a backup's key must be the naming layout's for that agent, target, start day
  and run (``agents/<agent>/<target>/<yyyy>/<mm>/<dd>/<run_id>.<ext>``);
- **the times**: an event dated after the audit's clock by more than ``max_skew`` (a host clock that
  runs ahead, or a forgery meant to push deadlines out) moves no deadline: a Started or heartbeat from
  the future is refused, a Succeeded from the future never counts as a good backup, and a Failed is
  recorded at the audit's time.

A refusal is a ``Refusal`` with the reason in words; the caller logs it, counts it and records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from backup_contracts.events import AgentHeartbeat, BackupStarted, BackupSucceeded
from backup_contracts.fleet import Fleet, Target
from backup_contracts.naming import agent_prefix

DEFAULT_MAX_SKEW = timedelta(minutes=5)
S3_KEY_MAX_BYTES = 1024


class Refusal(Exception):
    """An event the audit records nothing for; ``reason`` says why in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Provenance:
    """The fleet and the clock an event is judged against."""

    fleet: Fleet
    max_skew: timedelta = DEFAULT_MAX_SKEW

    def owned_target(self, event: BackupStarted, sender: str | None) -> Target:
        """The event's target, if the sender is the event's agent and the fleet's owner of the target."""
        self.check_sender(event.agent, sender)
        try:
            owner, target = self.fleet.target(event.target)
        except KeyError:
            raise Refusal(f"target {event.target!r} is not in the fleet; nothing is recorded for it") from None
        if owner.name != event.agent:
            raise Refusal(f"agent {event.agent} reported on target {event.target}, which belongs to agent {owner.name}")
        return target

    @staticmethod
    def check_sender(agent: str, sender: str | None) -> None:
        if sender is None:
            raise Refusal(f"the event names agent {agent} but no agent source sent it")
        if sender != agent:
            raise Refusal(f"the event names agent {agent} but was sent by agent {sender} (its source)")

    def check_heartbeat(self, event: AgentHeartbeat, sender: str | None, now: datetime) -> None:
        self.check_sender(event.agent, sender)
        if event.agent not in {agent.name for agent in self.fleet.agents}:
            raise Refusal(f"agent {event.agent} is not in the fleet")
        self.check_not_ahead(event.sent_at, "sent_at", now)

    def check_not_ahead(self, moment: datetime, name: str, now: datetime) -> None:
        if moment > now + self.max_skew:
            raise Refusal(
                f"its {name} {moment.isoformat()} is {moment - now} ahead of the audit's clock (more than"
                f" {self.max_skew}): a host clock running ahead or a forged time moves no deadline"
            )

    def ahead(self, moment: datetime, now: datetime) -> bool:
        return moment > now + self.max_skew

    def clamp(self, moment: datetime, now: datetime) -> datetime:
        """A time no later than the audit's clock (what a deadline may be computed from)."""
        return min(moment, now)


def unreachable_problems(event: BackupStarted, bucket: str) -> list[str]:
    """Why S3 must not even be asked about the object: it lies outside the pipeline's bucket or the agent's
    prefix, or its key is longer than S3's. Checked before any call, so that a bucket of someone else's
    (HeadObject: NoSuchBucket or AccessDenied), a name that is no bucket name or an empty key (refused by
    botocore before any call) is a reason why the run is unverified, never an exception."""
    problems = []
    if event.bucket != bucket:
        problems.append(f"object is in bucket {event.bucket!r}, not the pipeline's bucket {bucket!r}")
    if not event.key.startswith(agent_prefix(event.agent)):
        problems.append(f"object key {event.key!r} is outside the agent's prefix {agent_prefix(event.agent)!r}")
    elif len(event.key.encode("utf-8")) > S3_KEY_MAX_BYTES:
        problems.append(f"object key is {len(event.key.encode('utf-8'))} bytes long, longer than S3 allows")
    return problems


def key_layout_problems(event: BackupStarted) -> list[str]:
    """Whether the object key is the naming layout's for this agent, target, start day and run."""
    expected = f"{agent_prefix(event.agent)}{event.target}/{event.started_at:%Y/%m/%d}/{event.run_id}."
    if not event.key.startswith(expected) or "/" in event.key[len(expected) :]:
        return [f"object key {event.key!r} is not this run's ({expected}<ext>)"]
    return []


def time_problems(event: BackupSucceeded, provenance: Provenance, now: datetime) -> list[str]:
    """Times a good backup cannot have: ending before it started, or after the audit's clock."""
    problems = []
    if event.finished_at < event.started_at:
        problems.append(f"the run finished at {event.finished_at.isoformat()}, before it started")
    if provenance.ahead(event.finished_at, now):
        problems.append(
            f"the run finished at {event.finished_at.isoformat()}, {event.finished_at - now} after the audit's"
            f" clock (more than {provenance.max_skew}): it does not count and moves no deadline"
        )
    return problems
