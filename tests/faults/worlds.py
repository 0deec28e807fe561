"""One moto world for every fault scenario: the resources the stack creates (``provision``), the four
functions wired to clients that carry the fault hook, and what people, agents and consumers receive.

The restore tests' ``World`` (tests/restore/conftest.py) supplies the inputs (requests, agent reports,
seeded backups) and the outputs (alerts, pipeline events, jobs); this module adds the audit, the
dispatcher and the watchdog on the same clients.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from moto import mock_aws

from backup_contracts import ledger as keys
from backup_contracts.fleet import Fleet, OffsiteVault, parse_fleet
from backup_functions.audit import handler as audit_handler
from backup_functions.audit import logic as audit_logic
from backup_functions.dispatcher import handler as dispatcher_handler
from backup_functions.dispatcher import logic as dispatcher_logic
from backup_functions.ledger import Ledger
from backup_functions.ports import EventBridgePublisher, S3ObjectStore, SnsNotifier, SqsJobQueue
from backup_functions.restore import handler as restore_handler
from backup_functions.restore.logic import Coordinator, CoordinatorConfig
from backup_functions.watchdog import handler as watchdog_handler
from local_pipeline.clock import SimulatedClock
from local_pipeline.resources import provision
from local_pipeline.runner import LambdaContext
from tests.faults.harness import Fault, normalise
from tests.restore.conftest import FLEET, REGION, T0, World, capture_pipeline_events, restore_fleet

OFFSITE = OffsiteVault(region="eu-central-1", account="123456789012", primary_account="123456789012", lag="1h")
CONTEXT = LambdaContext(
    function_name="faults-fn",
    aws_request_id="00000000-0000-0000-0000-000000000000",
    invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:faults-fn",
)
SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


@dataclass
class FaultWorld:
    world: World
    fault: Fault
    auditor: audit_logic.Auditor

    @property
    def clock(self) -> SimulatedClock:
        return self.world.clock

    # ------------------------------------------------------------------ invocations, as AWS makes them
    def record(self, body: str | dict[str, Any]) -> dict[str, Any]:
        text = body if isinstance(body, str) else json.dumps(body, default=str)
        return {"messageId": "m-1", "receiptHandle": "h-1", "body": text, "attributes": {}, "eventSource": "aws:sqs"}

    def audit(self, body: str | dict[str, Any]) -> dict[str, Any]:
        return audit_handler.handler({"Records": [self.record(body)]}, CONTEXT)

    def restore(self, body: str | dict[str, Any]) -> dict[str, Any]:
        return restore_handler.handler({"Records": [self.record(body)]}, CONTEXT)

    def restore_tick(self) -> dict[str, Any]:
        return restore_handler.handler({**SCHEDULED, "time": self.clock.now().isoformat()}, CONTEXT)

    def watchdog_tick(self) -> dict[str, Any]:
        return watchdog_handler.handler(SCHEDULED, CONTEXT)

    def dispatcher_tick(self) -> dict[str, Any]:
        return dispatcher_handler.handler(SCHEDULED, CONTEXT)

    # ------------------------------------------------------------------ the end state
    def end_state(self) -> dict[str, Any]:
        w = self.world
        items = sorted(w.ledger.client.scan_all(), key=lambda item: (item[keys.PK], item[keys.SK]))
        alerts = [{"subject": a.subject, "body": a.body, "attributes": a.attributes} for a in w.alerts()]
        jobs = [json.loads(job.model_dump_json(exclude_none=True)) for job in w.all_jobs()]
        events = list(w.pipeline_events())
        versions = w.s3.list_object_versions(Bucket=w.resources.bucket).get("Versions", [])
        ordered = sorted(versions, key=lambda v: (v["Key"], v["LastModified"]))
        # what was received, as multisets: the order across invocations is not part of the outcome
        state = {"ledger": items, "alerts": _ordered(alerts), "jobs": _ordered(jobs), "events": _ordered(events)}
        if w.resources.vault is not None:  # the copies' version ids are moto's too
            vault_s3 = w.session.client("s3", region_name=w.resources.vault.region)
            copies = vault_s3.list_object_versions(Bucket=w.resources.vault.bucket).get("Versions", [])
            ordered += sorted(copies, key=lambda v: (v["Key"], v["LastModified"]))
        variable = [v["VersionId"] for v in ordered if v.get("VersionId") not in (None, "null")]
        key = w.resources.kms_key_arn  # moto makes a new key id in every world
        return normalise(state, [key, key.rsplit("/", 1)[-1], *variable])


class _Clients:
    """boto3 clients made once per process (creating one costs ~50 ms; moto's stubber serves whichever
    ``mock_aws`` is active): plain ones for setup and outputs, hooked ones for the functions, whose hook
    calls the current run's fault."""

    def __init__(self) -> None:
        self.session = boto3.Session(region_name=REGION)
        self.fault = Fault()
        self._plain: dict[tuple[str, bool, str | None], Any] = {}
        self._hooked: dict[tuple[str, bool, str | None], Any] = {}

    def _make(self, service: str, sigv4: bool, region: str | None = None) -> Any:
        if sigv4:
            return self.session.client(service, config=Config(signature_version="s3v4"), region_name=region)
        return self.session.client(service, region_name=region)

    def client(self, service: str, config: Any = None, region_name: str | None = None, **_: Any) -> Any:
        key = (service, config is not None, region_name)
        if key not in self._plain:
            self._plain[key] = self._make(service, config is not None, region_name)
        return self._plain[key]

    def _hook(self, **kwargs: Any) -> None:
        self.fault.hook(**kwargs)

    def hooked(self, service: str, *, sigv4: bool = False, region: str | None = None) -> Any:
        key = (service, sigv4, region)
        if key not in self._hooked:
            client = self._make(service, sigv4, region)
            client.meta.events.register("before-call.*.*", self._hook)
            self._hooked[key] = client
        return self._hooked[key]

    def __getattr__(self, name: str) -> Any:  # the rest of a boto3.Session (region_name, …)
        return getattr(self.session, name)


_CLIENTS: list[_Clients] = []


def _clients() -> _Clients:
    if not _CLIENTS:
        _CLIENTS.append(_Clients())
    return _CLIENTS[0]


@contextmanager
def fault_world(fault: Fault, *, drills: bool, offsite: bool = False, pitr: bool = False) -> Iterator[FaultWorld]:
    """The world, with every client of the functions carrying ``fault``'s hook (disarmed); without
    ``drills`` the fleet has none (so a scenario's ticks do only what the scenario is about); with
    ``offsite`` it has an off-site vault (in moto, in its own region), which the watchdog reads."""
    with mock_aws():
        clients = _clients()
        clients.fault = fault
        session: Any = clients
        fleet = restore_fleet() if drills else _without_drills()
        if offsite:
            fleet = fleet.model_copy(update={"pipeline": fleet.pipeline.model_copy(update={"offsite": OFFSITE})})
        if pitr:  # db-host also runs a PITR target, which archives WAL
            fleet = with_pitr_target(fleet)
        resources = provision(fleet, session)
        sqs = session.client("sqs")
        capture_url = capture_pipeline_events(session, resources.bus_name)
        clock = SimulatedClock(T0)
        # the functions' clients (hooked); the world's own (setup, outputs) are not
        dynamodb = clients.hooked("dynamodb")
        s3 = clients.hooked("s3", sigv4=True)
        f_sqs, f_sns, f_events = (clients.hooked(name) for name in ("sqs", "sns", "events"))
        ledger = Ledger(resources.ledger_table, dynamodb)
        notifier = SnsNotifier(f_sns, resources.alert_topic_arn)
        publisher = EventBridgePublisher(f_events, resources.bus_name)
        coordinator = Coordinator(
            fleet,
            ledger,
            objects=S3ObjectStore(s3),
            jobs=SqsJobQueue(f_sqs),
            events=publisher,
            notifier=notifier,
            config=CoordinatorConfig.from_fleet(
                fleet,
                bus_name=resources.bus_name,
                bucket=resources.bucket,
                queue_url_prefix=resources.job_queue_url_prefix,
            ),
            clock=clock,
        )
        auditor = audit_logic.Auditor(
            fleet,
            ledger,
            objects=S3ObjectStore(s3),
            notifier=notifier,
            config=audit_logic.AuditConfig.from_fleet(
                fleet, bucket=resources.bucket, kms_key_arn=resources.kms_key_arn
            ),
            clock=clock,
        )
        restore_handler.configure(restore_handler.Runtime(coordinator))
        audit_handler.configure(audit_handler.Runtime(auditor))
        vault = S3ObjectStore(clients.hooked("s3", sigv4=True, region=OFFSITE.region)) if offsite else None
        watchdog_handler.configure(
            watchdog_handler.Runtime(
                fleet=fleet, ledger=ledger, notifier=notifier, events=publisher, clock=clock, vault=vault
            )
        )
        dispatcher_handler.configure(
            dispatcher_handler.Runtime(
                fleet=fleet,
                ledger=ledger,
                jobs=SqsJobQueue(f_sqs),
                config=dataclasses.replace(  # one writer: the calls come in one order, so call N is one call
                    dispatcher_logic.DispatchConfig.from_fleet(
                        fleet, bucket=resources.bucket, queue_url_prefix=resources.job_queue_url_prefix
                    ),
                    write_workers=1,
                ),
                clock=clock,
            )
        )
        world = World(
            fleet,
            resources,
            session,
            clock,
            coordinator,
            Ledger(resources.ledger_table, session.client("dynamodb")),
            capture_url,
            session.client("s3", config=Config(signature_version="s3v4")),
            sqs,
        )
        try:
            yield FaultWorld(world, fault, auditor)
        finally:
            for module in (restore_handler, audit_handler, watchdog_handler, dispatcher_handler):
                module.configure(None)


def _ordered(received: list[Any]) -> list[Any]:
    return sorted(received, key=lambda value: json.dumps(value, sort_keys=True, default=str))


PITR_TARGET = {"name": "orders-pitr", "engine": "postgresql-physical", "schedule": "rate(1 day)", "rpo": "26h"}


def with_pitr_target(fleet: Fleet) -> Fleet:
    spec = json.loads(fleet.model_dump_json(exclude_none=True))
    spec["agents"][0]["targets"].append(PITR_TARGET)
    return parse_fleet(spec)


def _without_drills() -> Fleet:
    spec = json.loads(json.dumps(FLEET))
    for agent in spec["agents"]:
        for target in agent["targets"]:
            target.pop("drill", None)
            target.pop("rto", None)  # an objective only drills measure
    return parse_fleet(spec)


def later(world: FaultWorld, minutes: int) -> datetime:
    """Move the clock on (a later tick)."""
    return world.clock.advance(timedelta(minutes=minutes))
