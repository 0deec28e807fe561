"""backupctl's client of the approvals URL (``backup_contracts.approvals_url``): one SigV4-signed POST.

The call is signed with the caller's own AWS credentials (boto3's usual chain: environment, profile, SSO,
instance role) for the ``lambda`` service, so AWS — not anything typed — tells the restore coordinator
who asks or approves. The URL is the stack output ``ApprovalsUrl`` (``--approvals-url`` or
``BACKUP_APPROVALS_URL``); it must be https, except on the loopback interface (the local stand-in).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from pydantic import ValidationError

from backup_contracts.approvals_url import SIGNING_SERVICE, Answer
from backupctl.context import UsageError

TIMEOUT_S = 60  # the restore function's own timeout
_REGION_IN_HOST = re.compile(r"\.lambda-url\.([a-z0-9-]+)\.on\.aws$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ApprovalsUrlError(RuntimeError):
    """The approvals URL could not be reached or did not answer as the API says (exit code 1)."""


def signing_region(url: str, fallback: str | None) -> str:
    """The region a function URL lives in (``<id>.lambda-url.<region>.on.aws``), else ``fallback``."""
    host = urlsplit(url).hostname or ""
    found = _REGION_IN_HOST.search(host)
    if found:
        return found.group(1)
    if fallback:
        return fallback
    raise UsageError(f"cannot tell the region of {url}. Fix: pass --region or set AWS_REGION")


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return url.rstrip("/")
    raise UsageError(f"approvals URL {url!r} must be https (the stack output ApprovalsUrl)")


def call(session: Any, url: str, path: str, body: dict[str, Any], *, region: str | None) -> tuple[int, Answer]:
    """POST ``body`` to ``url + path`` signed with the session's credentials; the status and its Answer."""
    target = check_url(url) + path
    credentials = session.get_credentials()
    if credentials is None:
        raise UsageError("no AWS credentials to sign the approval call with. Fix: log in (aws sso login, a profile)")
    data = json.dumps(body).encode()
    signed = AWSRequest(method="POST", url=target, data=data, headers={"content-type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), SIGNING_SERVICE, signing_region(url, region)).add_auth(signed)
    request = urllib.request.Request(target, data=data, headers=dict(signed.headers.items()), method="POST")  # noqa: S310 - https or loopback, checked above
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, TimeoutError) as exc:
        raise ApprovalsUrlError(f"the approvals URL {url} did not answer: {exc}") from None
    try:
        return status, Answer.model_validate_json(text)
    except ValidationError:
        # AWS itself answered (e.g. 403 before the function ran: the caller may not invoke the URL)
        raise ApprovalsUrlError(f"the approvals URL answered {status}: {text[:500]}") from None
