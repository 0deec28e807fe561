"""Watchdog Lambda, invoked by an EventBridge schedule every ``watchdog_interval_minutes``, and with SQS
batches of the silence events from the bus (``Silence Requested`` / ``Unsilence Requested``: its own queue;
``backup_functions.silence_requests``): the watchdog decides what pages, so it keeps the silences.

Thin: build the watchdog from the environment (once per container), tick at the clock's now, publish
metrics, then send the daily alert-path canary when it is due (``backup_functions.canary``; a runtime
configured without ``subscriptions`` — the simulations — sends none). The logic lives in
``watchdog.logic``; tests call ``run_tick`` directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from backup_contracts.events import SilenceRequested, UnsilenceRequested
from backup_contracts.fleet import Fleet
from backup_functions import canary
from backup_functions import settings as settings_module
from backup_functions.clock import Clock, SystemClock
from backup_functions.envelope import MalformedEventError, receive
from backup_functions.ledger import Ledger
from backup_functions.observability import ALERTS_SENT, OPEN_INCIDENTS, OVERDUE_TARGETS, SILENT_AGENTS, count, logger
from backup_functions.offsite.check import OffsiteCheck, VaultConfig
from backup_functions.offsite.objects import vault_store
from backup_functions.ports import (
    EventBridgePublisher,
    EventPublisher,
    Notifier,
    ObjectStore,
    SnsNotifier,
    SnsSubscriptions,
)
from backup_functions.runtime import Lazy, handle_sqs_batch, lambda_handler
from backup_functions.silence_requests import SilenceRequests
from backup_functions.watchdog.causes import FleetView
from backup_functions.watchdog.logic import Watchdog
from backup_functions.watchdog.notify import AlertNotifier
from backup_functions.watchdog.ports import TickReport
from backup_functions.watchdog.store import WatchdogStore


@dataclass
class Runtime:
    fleet: Fleet
    ledger: Ledger
    notifier: Notifier
    events: EventPublisher
    clock: Clock
    subscriptions: canary.Subscriptions | None = None  # None: no canary (simulated worlds)
    vault: ObjectStore | None = None  # the off-site vault (pipeline.offsite), read to verify each copy


def build_runtime(*, clock: Clock | None = None) -> Runtime:
    env = settings_module.settings()
    fleet = settings_module.fleet(env.fleet_file)
    return Runtime(
        fleet=fleet,
        ledger=Ledger(env.ledger_table, boto3.client("dynamodb")),
        notifier=SnsNotifier(boto3.client("sns"), env.alert_topic_arn, env.chat_topic_arn),
        events=EventBridgePublisher(boto3.client("events"), env.bus_name),
        clock=clock or SystemClock(),
        subscriptions=SnsSubscriptions(boto3.client("sns"), env.alert_topic_arn),
        vault=vault_store(fleet),
    )


runtime = Lazy(build_runtime)
configure = runtime.configure


def build_watchdog(
    *, fleet: Fleet, ledger: Ledger, notifier: Notifier, events: EventPublisher | None = None
) -> Watchdog:
    return Watchdog(
        WatchdogStore(ledger),
        AlertNotifier(notifier, fleet.pipeline.name, fleet, events),
        reminder_interval=timedelta(minutes=fleet.pipeline.reminder_interval_minutes),
        fleet=FleetView.of(fleet),
    )


def run_tick(
    now: datetime,
    *,
    fleet: Fleet,
    ledger: Ledger,
    notifier: Notifier,
    events: EventPublisher | None = None,
    vault: ObjectStore | None = None,
) -> TickReport:
    """One watchdog tick at ``now`` (what the handler does, with everything injected): first the due
    off-site checks (so a copy that arrived is verified before its lateness could page), then the watchdog."""
    config = VaultConfig.from_fleet(fleet)
    offsite = OffsiteCheck(fleet, ledger, vault, config).tick(now) if vault is not None and config else None
    report = build_watchdog(fleet=fleet, ledger=ledger, notifier=notifier, events=events).tick(now)
    report.offsite = offsite
    return report


def _summary(report: TickReport) -> dict[str, Any]:
    summary = asdict(report)
    summary["now"] = report.now.isoformat()
    summary["open_incidents_before"] = summary.pop("open_incidents")
    del summary["errors"]
    return summary


def handle_silence_record(record: SQSRecord) -> dict[str, Any]:
    request = receive(record.body).event
    if not isinstance(request, SilenceRequested | UnsilenceRequested):
        raise MalformedEventError(f"the watchdog's queue takes silence events only, not {type(request).__name__}")
    rt = runtime.get()
    answer = SilenceRequests(rt.fleet, rt.ledger, rt.notifier, clock=rt.clock).handle(request)
    logger.info("silence request answered", extra=asdict(answer))
    return asdict(answer)


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "Records" in event:  # silence events from the bus, through the watchdog's queue
        return handle_silence_record_batch(event, context)
    rt = runtime.get()
    now = rt.clock.now()
    logger.set_correlation_id(f"watchdog-{now:%Y%m%dT%H%M%SZ}")
    report = run_tick(now, fleet=rt.fleet, ledger=rt.ledger, notifier=rt.notifier, events=rt.events, vault=rt.vault)
    count(OVERDUE_TARGETS, report.overdue_targets)
    count(SILENT_AGENTS, report.silent_agents)
    count(OPEN_INCIDENTS, report.open_incidents)
    count(ALERTS_SENT, len(report.opened) + len(report.reminded) + len(report.resolved))
    summary = _summary(report)
    logger.info("watchdog tick", extra=summary)
    if rt.subscriptions is not None:
        summary["canary"] = _canary(now, rt, rt.subscriptions)
    return summary


def _canary(now: datetime, rt: Runtime, subscriptions: canary.Subscriptions) -> dict[str, Any]:
    sent = canary.send_if_due(now, fleet=rt.fleet, notifier=rt.notifier, subscriptions=subscriptions)
    if sent.sent:
        unconfirmed = sum(sent.pending.values())
        count(canary.UNCONFIRMED_SUBSCRIPTIONS, unconfirmed)
        count(ALERTS_SENT, 1)
        log = logger.warning if unconfirmed else logger.info
        log("alert-path canary sent", extra={"pending_confirmation": sent.pending, "message_id": sent.message_id})
    return asdict(sent)


def handle_silence_record_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_sqs_batch(event, context, function="watchdog", handle=handle_silence_record)
