"""The approvals URL, locally. moto has no Lambda function URLs, so this stands in for one — like the moto
server stands in for AWS and ``drain`` for the event source mappings.

A small HTTP server on 127.0.0.1 does what AWS does in front of the restore function's URL
(``AuthType AWS_IAM``): it checks the request's SigV4 signature (service ``lambda``) against the
credentials it was given, as IAM authentication would, and answers 403 to an unsigned request, an unknown
access key or a wrong signature; then it builds the function URL event (payload format 2.0) whose
``requestContext.authorizer.iam.userArn`` is the principal the access key belongs to, invokes the restore
handler with it and returns the handler's response.

What it does not do is IAM authorisation (may this principal invoke the URL at all): on AWS that is the
stack's grants (``stacks/approvals.py``), asserted on the synthesized template.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from backup_contracts.approvals_url import SIGNING_SERVICE

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Identity:
    """An access key the stand-in knows: its secret, and the principal ARN AWS would name for it."""

    secret_key: str
    arn: str


def function_url_event(
    *, method: str, path: str, body: str, caller_arn: str | None, account: str, region: str
) -> dict[str, Any]:
    """The event a function URL with AuthType AWS_IAM hands the function (payload format 2.0)."""
    now = datetime.now(UTC)
    iam = {"accessKey": "AKIA-LOCAL", "accountId": account, "callerId": "LOCAL", "userArn": caller_arn}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": account,
            "apiId": "local",
            "authorizer": {"iam": iam} if caller_arn else {},
            "domainName": f"local.lambda-url.{region}.on.aws",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature_problem(
    method: str, path: str, headers: Mapping[str, str], body: bytes, identities: Mapping[str, Identity]
) -> tuple[Identity | None, str]:
    """(the signer, "") when the request carries a valid SigV4 signature for the lambda service; else
    (None, why not) — what IAM authentication decides before a function URL invokes anything."""
    found = _AUTHORIZATION.match(headers.get("authorization", ""))
    if found is None:
        return None, "the request is not signed with SigV4 (Authorization: AWS4-HMAC-SHA256 ...)"
    if found["service"] != SIGNING_SERVICE:
        return None, f"the request is signed for service {found['service']!r}, a function URL needs 'lambda'"
    identity = identities.get(found["key"])
    if identity is None:
        return None, "the security token included in the request is invalid (unknown access key)"
    signed = found["headers"].split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        return None, "the signed headers are not all in the request"
    canonical = "\n".join(
        [
            method,
            urlsplit(path).path or "/",
            urlsplit(path).query,
            "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed),
            found["headers"],
            headers.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{found['date']}/{found['region']}/{found['service']}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", headers.get("x-amz-date", ""), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + identity.secret_key).encode(), found["date"])
    for part in (found["region"], found["service"], "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, found["signature"]):
        return None, "the request signature we calculated does not match the signature you provided"
    return identity, ""


@contextmanager
def local_approvals_url(
    invoke: Invoke, identities: Mapping[str, Identity], *, account: str, region: str
) -> Iterator[str]:
    """Serve the approvals URL on a free loopback port while the block runs; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            identity, problem = signature_problem(method, self.path, headers, body, identities)
            if identity is None:
                self._reply(403, {"Message": f"Forbidden: {problem}"})
                return
            event = function_url_event(
                method=method,
                path=urlsplit(self.path).path,
                body=body.decode(errors="replace"),
                caller_arn=identity.arn,
                account=account,
                region=region,
            )
            response = invoke(event)
            self._reply(int(response.get("statusCode", 200)), response.get("body", ""))

        def _reply(self, status: int, body: Any) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet, like the other local stand-ins

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="local-approvals-url", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
