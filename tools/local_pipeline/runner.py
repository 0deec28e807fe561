"""Drive the local pipeline: tick the scheduled functions, run real agent processes, and drain the
rule-fed queues into the event-driven handlers — what EventBridge and Lambda do in AWS."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import boto3

from backup_contracts.eventbus import PutEventsError, put_events
from backup_contracts.events import Contract
from local_pipeline.approvals_url import Identity, local_approvals_url
from local_pipeline.clock import PipelineClock
from local_pipeline.environment import environment
from local_pipeline.moto_server import MotoEndpoint
from local_pipeline.replication import replicator
from local_pipeline.resources import LocalResources

Handler = Callable[[dict[str, Any], Any], Any]

DISPATCHER = "backup_functions.dispatcher.handler"
AUDIT = "backup_functions.audit.handler"
WATCHDOG = "backup_functions.watchdog.handler"
RESTORE = "backup_functions.restore.handler"


class PipelineStepError(RuntimeError):
    """A step of the local pipeline failed; the message says which and why."""


@dataclass(frozen=True)
class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = ""
    invoked_function_arn: str = ""

    @staticmethod
    def for_function(name: str, resources: LocalResources) -> LambdaContext:
        return LambdaContext(
            function_name=name,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:{resources.region}:{resources.account}:function:{name}",
        )

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def scheduled_event(resources: LocalResources, rule: str, now: datetime) -> dict[str, Any]:
    """The event an EventBridge schedule delivers to a Lambda."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": resources.account,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": resources.region,
        "resources": [f"arn:aws:events:{resources.region}:{resources.account}:rule/{rule}"],
        "detail": {},
    }


class LocalPipeline:
    def __init__(self, endpoint: MotoEndpoint, resources: LocalResources, fleet_file: Path) -> None:
        self.endpoint = endpoint
        self.resources = resources
        self.fleet_file = fleet_file
        self.session: boto3.Session = endpoint.session()
        self.sqs = self.session.client("sqs")
        self.clock = PipelineClock()
        self._cold_start()

    def _cold_start(self) -> None:
        """Build every function's runtime afresh from this pipeline's environment — settings, fleet,
        clients — as a new Lambda container would, on this pipeline's clock, so every handler talks to
        this pipeline's moto server at the instants the pipeline plays."""
        from backup_functions import settings

        settings.settings.cache_clear()
        settings.fleet.cache_clear()
        with environment(self.function_environment):
            for module in (DISPATCHER, AUDIT, WATCHDOG, RESTORE):
                handler = importlib.import_module(module)
                handler.configure(handler.build_runtime(clock=self.clock))

    @property
    def function_environment(self) -> dict[str, str]:
        return self.resources.function_environment(str(self.fleet_file))

    # ------------------------------------------------------------------ scheduled functions
    def _handler(self, module: str) -> Handler:
        """Import a handler inside the functions' environment, as Lambda does at cold start (Powertools
        reads its settings when the module is imported)."""
        with environment(self.function_environment):
            return cast(Handler, importlib.import_module(module).handler)

    def _invoke(self, name: str, module: str, event: dict[str, Any]) -> Any:
        handler = self._handler(module)
        with environment(self.function_environment):
            return handler(event, LambdaContext.for_function(f"{self.resources.pipeline}-{name}", self.resources))

    def tick_dispatcher(self, now: datetime) -> Any:
        with self.clock.at(now):
            return self._invoke("dispatcher", DISPATCHER, scheduled_event(self.resources, "dispatcher-schedule", now))

    def tick_watchdog(self, now: datetime) -> Any:
        """The watchdog's schedule (silence events that arrived before it are handled first, as in AWS)."""
        self.drain_silences(now)
        with self.clock.at(now):
            return self._invoke("watchdog", WATCHDOG, scheduled_event(self.resources, "watchdog-schedule", now))

    def tick_restore_drills(self, now: datetime) -> Any:
        """The restore coordinator's schedule: start the restore drills that are due."""
        with self.clock.at(now):
            return self._invoke("restore", RESTORE, scheduled_event(self.resources, "restore-drill-schedule", now))

    def approvals_url(self, people: Mapping[str, Identity]) -> AbstractContextManager[str]:
        """The restore function's approvals URL (moto has no function URLs: ``approvals_url.py`` stands in),
        knowing the access keys in ``people``; yields its URL for ``backupctl --approvals-url``."""
        return local_approvals_url(
            lambda event: self._invoke("restore", RESTORE, event) or {},
            people,
            account=self.resources.account,
            region=self.resources.region,
        )

    def put_event(self, event: Contract) -> None:
        """What `backupctl` or `aws events put-events` does: one contract event on the pipeline's bus."""
        try:
            put_events(self.session.client("events"), [event], self.resources.bus_name)
        except PutEventsError as exc:
            raise PipelineStepError(f"the bus refused the event: {exc}") from exc

    # ------------------------------------------------------------------ event-driven functions
    def _sqs_records(self, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        arn = f"arn:aws:sqs:{self.resources.region}:{self.resources.account}:{queue_url.rsplit('/', 1)[1]}"
        return [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": self.resources.region,
            }
            for message in messages
        ]

    def drain(self, queue_url: str, name: str, module: str, now: datetime | None = None) -> int:
        """Feed every message on a rule-fed queue to its handler in SQS batches, as Lambda's event
        source mapping does; raise if the handler reports any record as failed."""
        handled = 0
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return handled
            with self.clock.at(now):
                response = self._invoke(name, module, {"Records": self._sqs_records(queue_url, messages)}) or {}
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if failed:
                raise PipelineStepError(f"{name}: {len(failed)} of {len(messages)} events were rejected (see log)")
            handled += len(messages)

    def drain_audit(self, now: datetime | None = None) -> int:
        return self.drain(self.resources.audit_queue_url, "audit", AUDIT, now)

    def drain_restore_events(self, now: datetime | None = None) -> int:
        return self.drain(self.resources.restore_queue_url, "restore", RESTORE, now)

    def drain_silences(self, now: datetime | None = None) -> int:
        """Silence events, to the watchdog function (its queue in the stack)."""
        return self.drain(self.resources.silence_queue_url, "watchdog", WATCHDOG, now)

    def replicate(self) -> list[str]:
        """What S3 replication does in AWS, by its local stand-in (``replication.py``): copy the backups
        the vault lacks. Returns the keys copied (none without a vault)."""
        if self.resources.vault is None:
            return []
        return replicator(self.session, self.resources.bucket, self.resources.vault).replicate()

    # ------------------------------------------------------------------ agents
    def run_agent(self, config_path: Path, *extra_env: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        """Run a real agent process until its queue is empty."""
        env = {**os.environ, **self.endpoint.environment(), **dict(extra_env)}
        return subprocess.run(
            [sys.executable, "-m", "backup_agent.cli", "--config", str(config_path), "run", "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    # ------------------------------------------------------------------ what a person sees
    def alerts(self) -> list[dict[str, Any]]:
        """Alerts delivered to the on-call inbox since the last call (SNS → SQS envelope unwrapped)."""
        delivered: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.resources.alerts_inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return delivered
            for message in messages:
                envelope = json.loads(message["Body"])
                delivered.append(
                    {
                        "subject": envelope.get("Subject", ""),
                        "message": envelope.get("Message", ""),
                        "attributes": {
                            key: value.get("Value") for key, value in envelope.get("MessageAttributes", {}).items()
                        },
                    }
                )
                self.sqs.delete_message(
                    QueueUrl=self.resources.alerts_inbox_url, ReceiptHandle=message["ReceiptHandle"]
                )
