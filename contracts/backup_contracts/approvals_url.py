"""The approvals URL's API, defined once for the restore function (which serves it) and backupctl (which
calls it with SigV4).

The URL is the restore function's function URL with ``AuthType AWS_IAM``: AWS authenticates every call
and the function learns the caller's principal ARN from the request, never from the body.

    POST /restores    body: a ``Restore Requested`` detail (without requested_by: the caller is the requester)
    POST /approvals   body: ``ApprovalCall`` ({"restore_id": ...}); the caller is the approver

Every answer's body is an ``Answer``: 200 when the call was handled (``action`` says how; a rejected
request is a handled one, ``reason_code`` says why), 403 when the caller may not do what it asked
(``self-approval``, ``not-an-approver``, no IAM identity), 400 for a body that is no request, 404/405
for other paths and methods.
"""

from __future__ import annotations

from backup_contracts.events import Contract, Identifier

REQUESTS_PATH = "/restores"
APPROVALS_PATH = "/approvals"
SIGNING_SERVICE = "lambda"  # function URLs are signed for the lambda service
URL_ENVIRONMENT = "BACKUP_APPROVALS_URL"  # where backupctl finds the URL (the stack output ApprovalsUrl)


class ApprovalCall(Contract):
    """The body of POST /approvals: which restore the caller approves."""

    restore_id: Identifier


class Answer(Contract):
    """What a call to the approvals URL did (the body of every answer)."""

    action: str  # awaiting-approval, dispatched, validated, rejected, duplicate, … or "refused" (400/403/404)
    restore_id: str | None = None
    reason_code: str | None = None
    detail: str = ""
    caller: str | None = None  # the principal ARN AWS authenticated
