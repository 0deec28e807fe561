"""The single-fault harness: fail one AWS call of a handler scenario once, let the pipeline recover the
way it does in AWS, and compare the end state with the fault-free run's.

- ``Fault``: a botocore ``before-call`` hook on every client a scenario's functions use. While armed it
  numbers each API call; the call whose number is ``index`` raises once, a ``ClientError``
  (``InternalError``) or a connection error, before it reaches moto (so it had no effect, as when AWS
  refused it). Setup calls are made disarmed and are not numbered.
- recovery is what AWS does: an SQS-fed function is invoked again with the same record while it reports
  it in ``batchItemFailures`` (``redeliver``); a caller of the approvals URL retries a call that failed
  (``retry``); a scheduled function is not retried, its next tick runs later (``tick``).
- ``EndState``: what the ledger holds and what people, agents and other consumers received (SNS
  messages, jobs on the agents' queues, events on the bus), normalised only where a value is
  legitimately different between two runs: S3 version ids (random in moto), the signature of a
  presigned URL (signed at send), and *when* a delivery was recorded (``job_sent_at``, ``notified_at``).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

FAULT_KINDS = ("client-error", "connection-error")
REDELIVERIES = 4  # SQS redelivers a failed record until maxReceiveCount (the stack's is higher)
DELIVERY_STAMPS = ("job_sent_at", "notified_at")


class InjectedFault(Exception):
    """Marks the exception the harness raised (tests assert it was raised once)."""


@dataclass
class Fault:
    """Numbers the armed API calls and fails the one at ``index`` once (None: a fault-free run)."""

    index: int | None = None
    kind: str = "client-error"
    armed: bool = False
    calls: list[str] = field(default_factory=list)
    fired: str | None = None

    def hook(self, model: Any, **_: Any) -> None:
        if not self.armed:
            return
        name = f"{model.service_model.service_name}.{model.name}"
        number = len(self.calls)
        self.calls.append(name)
        if number != self.index:
            return
        self.fired = name
        if self.kind == "connection-error":
            raise EndpointConnectionError(endpoint_url=f"https://injected/{name}")
        raise ClientError({"Error": {"Code": "InternalError", "Message": f"injected fault in {name}"}}, model.name)

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call.*.*", self.hook)
        return client


def redeliver(handler: Callable[[dict[str, Any], Any], dict[str, Any]], record: dict[str, Any], context: Any) -> int:
    """Invoke an SQS-fed handler with one record until it no longer reports it failed; the invocations."""
    for attempt in range(1, REDELIVERIES + 1):
        try:
            response = handler({"Records": [record]}, context)
        except Exception:  # noqa: BLE001, S112 - the whole invocation failed: SQS redelivers the batch
            continue
        if not response.get("batchItemFailures"):
            return attempt
    return REDELIVERIES


def retry(call: Callable[[], Any], attempts: int = 2) -> Any:
    """A caller that retries a call which failed (the approvals URL's client: ``backupctl``)."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception:  # noqa: BLE001 - the caller saw an error and tries again
            if attempt == attempts - 1:
                return None
    return None


def tick(call: Callable[[], Any]) -> None:
    """A scheduled invocation: not retried when it fails (its schedule runs it again later)."""
    with contextlib.suppress(Exception):  # the next tick is the retry
        call()


_PRESIGNED = re.compile(r'("presigned_url":\s*"[^"?]*)\?[^"]*"')


def normalise(state: Any, version_ids: list[str]) -> Any:
    """The end state with the values that may differ between two equivalent runs replaced."""
    text = json.dumps(state, sort_keys=True, default=str)
    for number, version in enumerate(version_ids):
        if version:
            text = text.replace(version, f"<version-{number}>")
    text = _PRESIGNED.sub(r'\1?<signature>"', text)
    for stamp in DELIVERY_STAMPS:
        text = re.sub(rf'("{stamp}":\s*)"[^"]*"', r'\1"<recorded>"', text)
    return json.loads(text)


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What differs, per part of the end state, in words a failing test prints."""
    found = []
    for part in sorted(set(expected) | set(actual)):
        want, got = expected.get(part), actual.get(part)
        if want == got:
            continue
        if isinstance(want, list) and isinstance(got, list):
            missing = [x for x in want if x not in got]
            extra = [x for x in got if x not in want]
            if len(want) != len(got) or missing or extra:
                found.append(f"{part}: {len(want)} expected, {len(got)} got; missing {missing}; extra {extra}")
                continue
        found.append(
            f"{part}: expected {json.dumps(want, default=str)[:1500]}\n   got {json.dumps(got, default=str)[:1500]}"
        )
    return found
