"""Turn the watchdog's notices into the pipeline's alerts (backup_functions.alerts) and send them."""

from __future__ import annotations

from typing import Any

from backup_contracts import ledger
from backup_contracts.fleet import Fleet
from backup_functions import alerts
from backup_functions.ports import Notifier
from backup_functions.watchdog.logic import Notice

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
        extra={"resolution": notice.resolution} if notice.resolution else {},
    )


def alert_for(notice: Notice, pipeline: str, fleet: Fleet | None = None) -> alerts.Alert:
    return alerts.build(notice.kind, situation(notice, pipeline, fleet), notice.phase)


class AlertNotifier:
    """Sends each notice as the pipeline's alert through the ``Notifier`` port (SNS in the Lambda)."""

    def __init__(self, notifier: Notifier, pipeline: str, fleet: Fleet | None = None) -> None:
        self._notifier = notifier
        self._pipeline = pipeline
        self._fleet = fleet

    def send(self, notice: Notice) -> None:
        self._notifier.notify(alert_for(notice, self._pipeline, self._fleet))
