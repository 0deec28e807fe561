"""The audit's incidents: a failed or unverified backup pages at once, and a newer good backup resolves
it — through the one incident protocol of the ledger (``ledger/incidents.py``), shared with the watchdog.
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
from backup_functions.ledger import Ledger, target_subject
from backup_functions.ports import Notifier

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

    def alert(self, kind: str, event: BackupStarted, situation: alerts.Situation, details: dict[str, Any]) -> bool:
        """Open the incident and alert once (the incident protocol); a redelivery stays quiet."""
        incidents = self.ledger.incidents
        incident, claim = incidents.open(
            target_subject(event.target),
            kind,
            opened_at=situation.since,
            claimed_at=self.clock.now(),
            details=details,
            target=event.target,
            agent=event.agent,
        )
        if claim is None:
            if incident.details.get("run_id") != event.run_id:
                incidents.update_details(incident, details)  # a later failure: keep the latest facts
            if incident.last_notified_at is not None:
                return False
            claim = incidents.claim_notification(incident, self.clock.now())  # its first send was released
            if claim is None:
                return False
        alert = alerts.build(kind, situation)
        try:
            self.notifier.notify(alert)
        except Exception:
            incidents.release(claim)  # the SQS redelivery (or the watchdog) sends it
            raise
        log.info("alert sent", extra={"kind": kind, "subject": alert.subject})
        return True

    def resolve_after(self, event: BackupSucceeded) -> list[str]:
        resolved = []
        for kind in RESOLVED_BY_GOOD_BACKUP:
            incident = self.ledger.incidents.get(target_subject(event.target), kind)
            if incident is None:
                continue
            failed_started = incident.details.get("started_at")
            if failed_started and failed_started > keys.iso(event.started_at):
                continue  # this good backup is older than the failure: the incident still stands
            if not self.ledger.incidents.resolve(incident):
                continue
            resolved.append(kind)
            if incident.last_notified_at is not None:
                situation = self.situation(event, incident.opened_at, notify_count=incident.notify_count)
                self.notifier.notify(alerts.build(kind, situation, "resolved"))
        return resolved
