"""The approvals URL (``backup_contracts.approvals_url``): restore requests and approvals whose caller AWS
authenticated.

The restore function's URL has ``AuthType AWS_IAM`` (``stacks/approvals.py``): AWS verifies the SigV4
signature and the caller's ``lambda:InvokeFunctionUrl`` permission before the function runs, and passes
the caller's principal ARN as ``requestContext.authorizer.iam.userArn`` (payload format 2.0). That ARN
is the requester of ``POST /restores`` and the approver of ``POST /approvals``; nothing a caller writes
in the body can change who it is. An event without that identity is refused: the URL is not behind IAM.

The function's resource policy lets principals invoke it only through the URL
(``lambda:InvokedViaFunctionUrl``), so a direct ``lambda:Invoke`` with a made-up request context is
open only to whoever IAM lets invoke the function itself (the account's administrators).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backup_contracts.approvals_url import APPROVALS_PATH, REQUESTS_PATH, Answer, ApprovalCall
from backup_contracts.validation import describe_validation_error
from backup_functions.envelope import MalformedEventError
from backup_functions.restore.approvals import REFUSED_APPROVALS
from backup_functions.restore.context import Outcome
from backup_functions.restore.logic import Coordinator

log = logging.getLogger(__name__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _Iam(_Model):
    user_arn: str | None = Field(default=None, alias="userArn")


class _Authorizer(_Model):
    iam: _Iam | None = None


class _Http(_Model):
    method: str
    path: str


class _RequestContext(_Model):
    http: _Http
    authorizer: _Authorizer | None = None


class FunctionUrlEvent(_Model):
    """What the handler reads of a function URL request (payload format 2.0)."""

    request_context: _RequestContext = Field(alias="requestContext")
    body: str | None = None
    is_base64_encoded: bool = Field(default=False, alias="isBase64Encoded")

    @property
    def caller_arn(self) -> str | None:
        authorizer = self.request_context.authorizer
        return authorizer.iam.user_arn if authorizer and authorizer.iam else None


def is_function_url_event(event: Mapping[str, Any]) -> bool:
    """A function URL request (an SQS batch or a schedule never has ``requestContext.http``)."""
    context = event.get("requestContext")
    return isinstance(context, dict) and isinstance(context.get("http"), dict)


@dataclass(frozen=True)
class Reply:
    """One answer of the URL: its status and body, and the coordinator's outcome when there was one."""

    status: int
    answer: Answer
    outcome: Outcome | None = None

    def response(self) -> dict[str, Any]:
        """The function URL response (payload format 2.0)."""
        return {
            "statusCode": self.status,
            "headers": {"content-type": "application/json"},
            "body": self.answer.model_dump_json(exclude_none=True),
        }


def _refused(status: int, reason: str, caller: str | None = None) -> Reply:
    return Reply(status, Answer(action="refused", detail=reason, caller=caller))


class ApprovalsApi:
    """Routes a function URL request to the coordinator with the caller AWS authenticated."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    def handle(self, event: Mapping[str, Any]) -> Reply:
        try:
            request = FunctionUrlEvent.model_validate(event)
        except ValidationError as exc:
            return _refused(400, f"not a function URL request: {describe_validation_error(exc)}")
        caller = request.caller_arn
        if not caller:
            log.error("approvals URL called without an IAM identity: the URL must use AuthType AWS_IAM")
            return _refused(403, "no IAM identity came with the request; the approvals URL only serves AWS_IAM")
        http = request.request_context.http
        route = {REQUESTS_PATH: self._request, APPROVALS_PATH: self._approve}.get(http.path.rstrip("/") or "/")
        if route is None:
            return _refused(
                404, f"no such path {http.path!r}; use POST {REQUESTS_PATH} or POST {APPROVALS_PATH}", caller
            )
        if http.method.upper() != "POST":
            return _refused(405, f"{http.method} {http.path}: only POST is served", caller)
        try:
            body = _json_object(request)
            outcome = route(body, caller)
        except MalformedEventError as exc:
            return _refused(400, str(exc), caller)
        log.info("approvals URL: %s by %s: %s", http.path, caller, outcome.action, extra={"caller": caller})
        answer = Answer(
            action=outcome.action,
            restore_id=outcome.restore_id,
            reason_code=outcome.reason_code,
            detail=outcome.detail,
            caller=caller,
        )
        refused = outcome.action == "rejected" and outcome.reason_code in REFUSED_APPROVALS
        return Reply(403 if refused else 200, answer, outcome)

    def _request(self, body: dict[str, Any], caller: str) -> Outcome:
        given = body.get("requested_by")
        if given not in (None, caller):
            raise MalformedEventError(
                f"requested_by is the caller AWS authenticated ({caller}), not {given!r}: leave it out"
            )
        return self.coordinator.request({**body, "requested_by": caller}, caller)

    def _approve(self, body: dict[str, Any], caller: str) -> Outcome:
        try:
            call = ApprovalCall.model_validate(body)
        except ValidationError as exc:
            raise MalformedEventError(f"not an approval: {describe_validation_error(exc)}") from None
        return self.coordinator.approve(call.restore_id, caller)


def _json_object(request: FunctionUrlEvent) -> dict[str, Any]:
    raw = request.body or ""
    try:
        text = base64.b64decode(raw, validate=True).decode() if request.is_base64_encoded else raw
        body = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEventError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedEventError("the body must be a JSON object")
    return body
