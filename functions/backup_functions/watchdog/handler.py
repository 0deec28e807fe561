"""Watchdog Lambda, invoked by an EventBridge schedule every ``watchdog_interval_minutes``.

Thin: read settings and the fleet, build the watchdog from injected clients, tick at the clock's
now, publish metrics. The logic lives in ``watchdog.logic``; tests call ``run_tick`` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3

from backup_contracts.fleet import Fleet
from backup_functions.clock import Clock, SystemClock
from backup_functions.ledger import Ledger
from backup_functions.observability import OVERDUE_TARGETS, MetricUnit, logger, metrics, tracer
from backup_functions.settings import fleet as load_fleet
from backup_functions.settings import settings
from backup_functions.watchdog.logic import TickReport, Watchdog
from backup_functions.watchdog.notify import SnsNotifier
from backup_functions.watchdog.store import WatchdogStore

SILENT_AGENTS = "SilentAgents"
OPEN_INCIDENTS = "OpenIncidents"
ALERTS_SENT = "AlertsSent"


@dataclass
class Runtime:
    fleet: Fleet
    table: str
    topic_arn: str
    dynamodb: Any
    sns: Any
    clock: Clock


_runtime: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    """Inject the runtime (tests, local pipeline); None goes back to building it from the environment."""
    global _runtime  # noqa: PLW0603 - one cached runtime per Lambda container
    _runtime = runtime


def runtime() -> Runtime:
    global _runtime  # noqa: PLW0603
    if _runtime is None:
        cfg = settings()
        _runtime = Runtime(
            fleet=load_fleet(cfg.fleet_file),
            table=cfg.ledger_table,
            topic_arn=cfg.alert_topic_arn,
            dynamodb=boto3.client("dynamodb"),
            sns=boto3.client("sns"),
            clock=SystemClock(),
        )
    return _runtime


def build_watchdog(*, table: str, topic_arn: str, fleet: Fleet, dynamodb: Any, sns: Any) -> Watchdog:
    return Watchdog(
        WatchdogStore(Ledger(table, dynamodb)),
        SnsNotifier(sns, topic_arn, fleet.pipeline.name, fleet),
        reminder_interval=timedelta(minutes=fleet.pipeline.reminder_interval_minutes),
    )


def run_tick(now: datetime, *, table: str, topic_arn: str, fleet: Fleet, dynamodb: Any, sns: Any) -> TickReport:
    """One watchdog tick at ``now`` (what the handler does, with everything injected)."""
    watchdog = build_watchdog(table=table, topic_arn=topic_arn, fleet=fleet, dynamodb=dynamodb, sns=sns)
    return watchdog.tick(now)


def _summary(report: TickReport) -> dict[str, Any]:
    return {
        "now": report.now.isoformat(),
        "overdue_items": report.overdue_items,
        "overdue_targets": report.overdue_targets,
        "silent_agents": report.silent_agents,
        "open_incidents_before": report.open_incidents,
        "opened": report.opened,
        "reminded": report.reminded,
        "resolved": report.resolved,
        "superseded": report.superseded,
        "ignored": report.ignored,
    }


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    rt = runtime()
    report = run_tick(
        rt.clock.now(), table=rt.table, topic_arn=rt.topic_arn, fleet=rt.fleet, dynamodb=rt.dynamodb, sns=rt.sns
    )
    metrics.add_metric(name=OVERDUE_TARGETS, unit=MetricUnit.Count, value=report.overdue_targets)
    metrics.add_metric(name=SILENT_AGENTS, unit=MetricUnit.Count, value=report.silent_agents)
    metrics.add_metric(name=OPEN_INCIDENTS, unit=MetricUnit.Count, value=report.open_incidents)
    metrics.add_metric(
        name=ALERTS_SENT, unit=MetricUnit.Count, value=len(report.opened) + len(report.reminded) + len(report.resolved)
    )
    summary = _summary(report)
    logger.info("watchdog tick", extra=summary)
    return summary
