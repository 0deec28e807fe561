"""The audit's incidents: a failed or unverified backup pages at once, and a newer good backup resolves
it — through the one incident protocol of the ledger (``ledger/incidents.py``), shared with the watchdog.

Each message is owed by the write that opens or resolves the incident (the ledger's outbox): if the
publish fails, the SQS redelivery finds it owed and sends it as stored (after ``outbox.GRACE`` the
watchdog would); a resolved incident is deleted once its "resolved" message went out. A failure that a
silence holds is recorded without a page (``silenced_by``); the watchdog pages it when the silence ends.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from backup_contracts import ledger as keys
from backup_contracts.events import BackupStarted, BackupSucceeded
from backup_contracts.fleet import Fleet
from backup_functions import alerts
from backup_functions.clock import Clock
from backup_functions.ledger import Incident, Ledger, SilenceItem, target_subject
from backup_functions.ledger.silences import holding
from backup_functions.ports import Courier, Notifier, alert_entry

log = logging.getLogger(__name__)

RESOLVED_BY_GOOD_BACKUP = (alerts.FAILED, alerts.UNVERIFIED)


class AuditIncidents:
    """Opens, alerts and resolves the incidents the audit owns (failed, unverified)."""

    def __init__(self, fleet: Fleet, ledger: Ledger, notifier: Notifier, *, pipeline: str, clock: Clock) -> None:
        self.ledger = ledger
        self.notifier = notifier
        self.pipeline = pipeline
        self.clock = clock
        self._targets = {target.name: target for _, target in fleet.targets()}

    def settle(self, incident: Incident) -> None:
        """Send what the incident still owes (a redelivery completes what a failed call left)."""
        Courier(notifier=self.notifier).settle(
            incident.owed, lambda name, entry, last: self.ledger.incidents.settle(incident, name, entry, last=last)
        )

    def situation(self, event: BackupStarted, since: datetime, **extra: Any) -> alerts.Situation:
        state = self.ledger.targets.get(event.target)
        target = self._targets.get(event.target)
        return alerts.Situation(
            pipeline=self.pipeline,
            agent=event.agent,
            target=event.target,
            since=since,
            now=self.clock.now(),
            last_good_at=state.last_good_at if state else None,
            last_good_run_id=state.last_good_run_id if state else None,
            last_good_bytes=state.last_good_bytes if state else None,
            rpo=target.rpo_delta if target else None,
            job_id=event.job_id,
            run_id=event.run_id,
            **extra,
        )

    def holding(self, kind: str, target: str, agent: str) -> SilenceItem | None:
        """The silence in force that holds this failure's page (one Query, only on a failure)."""
        now = self.clock.now()
        return holding(self.ledger.silences.in_force(now), kind=kind, target=target, agent=agent)

    def alert(self, kind: str, event: BackupStarted, situation: alerts.Situation, details: dict[str, Any]) -> bool:
        """Open the incident and alert once (the incident protocol, the alert owed in the same write); a
        redelivery sends only what is still owed. Held by a silence, it is recorded and not sent: the
        watchdog pages it once when the silence ends."""
        incidents = self.ledger.incidents
        subject, now = target_subject(event.target), self.clock.now()
        silence = self.holding(kind, event.target, event.agent)
        alert = alerts.build(kind, situation)
        entry_id = f"incident:{subject}#{kind}:{keys.iso(situation.since)}:open"
        owed = {} if silence else {"alert": alert_entry(alert, id=entry_id, at=now)}
        held = {"silenced_by": silence.silence_id} if silence else {}
        incident, claim = incidents.open(
            subject,
            kind,
            opened_at=situation.since,
            claimed_at=now,
            details=details,
            owed=owed,
            notify=silence is None,
            target=event.target,
            agent=event.agent,
            **held,
        )
        if claim is None:
            if incident.owed:
                self.settle(incident)  # what the first delivery could not send
                return True
            if incident.details.get("run_id") != event.run_id:
                incidents.update_details(incident, details)  # a later failure: keep the latest facts
            return False  # paged already, or held (by a silence: the watchdog pages it when that ends)
        if silence is not None:
            log.info("alert held by a silence", extra={"kind": kind, "silence": silence.silence_id})
            return False
        self.settle(incident)
        log.info("alert sent", extra={"kind": kind, "subject": alert.subject})
        return True

    def resolve_after(self, event: BackupSucceeded) -> list[str]:
        resolved = []
        for kind in RESOLVED_BY_GOOD_BACKUP:
            incident = self.ledger.incidents.get(target_subject(event.target), kind)
            if incident is None:
                continue
            if incident.resolved_at is not None:  # resolved, its message still owed (a redelivery)
                self.settle(incident)
                resolved.append(kind)
                continue
            failed_started = incident.details.get("started_at")
            if failed_started and failed_started > keys.iso(event.started_at):
                continue  # this good backup is older than the failure: the incident still stands
            if incident.last_notified_at is None:  # nobody was told: nothing to take back
                if self.ledger.incidents.resolve(incident):
                    resolved.append(kind)
                continue
            now = self.clock.now()
            situation = self.situation(event, incident.opened_at, notify_count=incident.notify_count)
            entry_id = f"incident:{incident.sk}:{keys.iso(incident.opened_at)}:resolved"
            owed = {"alert": alert_entry(alerts.build(kind, situation, "resolved"), id=entry_id, at=now)}
            if not self.ledger.incidents.resolve(incident, owed, at=now):
                continue
            resolved.append(kind)
            self.settle(incident.model_copy(update={"owed": owed, "resolved_at": now}))
        return resolved
