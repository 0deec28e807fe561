"""EventBridge events as the event-driven Lambdas receive them (rule → SQS → Lambda): one unwrapping and
one parse into the contract models, with one error type whose message says why a record is not a
contract event (it then goes to the DLQ)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from backup_contracts.events import Contract, UnknownEventError, parse_event
from backup_contracts.naming import sender_agent
from backup_contracts.validation import describe_validation_error


class MalformedEventError(ValueError):
    """The record is not a contract event; the message says why (it goes to the DLQ)."""


def unwrap(body: str | Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(source, detail-type, detail) of an EventBridge event given as JSON text or a dict."""
    if isinstance(body, str):
        try:
            envelope = json.loads(body)
        except json.JSONDecodeError as exc:
            raise MalformedEventError(f"record body is not JSON: {exc.msg} at position {exc.pos}") from None
    else:
        envelope = body
    if not isinstance(envelope, dict):
        raise MalformedEventError("record body is not an EventBridge event (expected a JSON object)")
    absent = [name for name in ("source", "detail-type", "detail") if name not in envelope]
    if absent:
        raise MalformedEventError(f"record body is not an EventBridge event: missing {', '.join(absent)}")
    detail = envelope["detail"]
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except json.JSONDecodeError as exc:
            raise MalformedEventError(f"event detail is not JSON: {exc.msg}") from None
    if not isinstance(detail, dict):
        raise MalformedEventError("event detail must be a JSON object")
    return str(envelope["source"]), str(envelope["detail-type"]), detail


def contract_event(source: str, detail_type: str, detail: dict[str, Any]) -> Contract:
    """The contract model of an event's detail, or MalformedEventError saying what does not match."""
    try:
        return parse_event(source, detail_type, detail)
    except UnknownEventError as exc:
        raise MalformedEventError(str(exc)) from None
    except ValidationError as exc:
        reason = describe_validation_error(exc)
        raise MalformedEventError(f"{detail_type!r} detail does not match the contract: {reason}") from None


CORRELATION_FIELDS = ("restore_id", "run_id", "request_id", "job_id")


def correlation_id(body: str | Mapping[str, Any]) -> str | None:
    """The business id an event is about (restore, run, request or job id), for log correlation;
    None when the body is not an event or names none (never raises)."""
    try:
        _, _, detail = unwrap(body)
    except MalformedEventError:
        return None
    for name in CORRELATION_FIELDS:
        value = detail.get(name)
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return None


@dataclass(frozen=True)
class Delivery:
    """A contract event and who sent it: the agent its source names (None for people and the pipeline)."""

    event: Contract
    source: str
    sender: str | None


def receive(body: str | Mapping[str, Any]) -> Delivery:
    """An EventBridge event (as JSON text or dict) → its contract model and sender, or MalformedEventError."""
    source, detail_type, detail = unwrap(body)
    return Delivery(contract_event(source, detail_type, detail), source, sender_agent(source))
