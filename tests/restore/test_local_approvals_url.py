"""The local stand-in of the approvals URL authenticates like AWS in front of a function URL: only a valid
SigV4 signature for the lambda service, by a key it knows, names a caller."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local_pipeline.approvals_url import Identity, function_url_event, signature_problem

pytestmark = pytest.mark.unit

BOB = "arn:aws:iam::123456789012:user/bob"
IDENTITIES = {"AKIDBOB": Identity("bob-secret", BOB)}
URL = "http://127.0.0.1:8123/approvals"
BODY = b'{"restore_id": "r-1"}'


def _signed(service: str = "lambda", secret: str | None = None, key: str = "AKIDBOB") -> dict[str, str]:
    secret = secret or IDENTITIES["AKIDBOB"].secret_key
    request = AWSRequest(method="POST", url=URL, data=BODY, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(key, secret), service, "us-east-1").add_auth(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    return {**headers, "host": urlsplit(URL).netloc}


def _check(headers: dict[str, str], body: bytes = BODY) -> tuple[Identity | None, str]:
    return signature_problem("POST", "/approvals", headers, body, IDENTITIES)


def test_a_valid_signature_names_the_caller() -> None:
    identity, problem = _check(_signed())
    assert (identity, problem) == (IDENTITIES["AKIDBOB"], "")


@pytest.mark.parametrize(
    ("headers", "body", "words"),
    [
        ({"host": "127.0.0.1:8123"}, BODY, "not signed with SigV4"),
        (_signed(service="execute-api"), BODY, "a function URL needs 'lambda'"),
        (_signed(key="AKIDMALLORY"), BODY, "unknown access key"),
        (_signed(secret="guessed"), BODY, "signature we calculated does not match"),
        (_signed(), b'{"restore_id": "r-2"}', "signature we calculated does not match"),  # body changed
    ],
)
def test_anything_else_is_refused(headers: dict[str, str], body: bytes, words: str) -> None:
    identity, problem = _check(headers, body)
    assert identity is None
    assert words in problem


def test_the_event_carries_the_caller_where_a_function_url_puts_it() -> None:
    event = function_url_event(
        method="POST", path="/approvals", body="{}", caller_arn=BOB, account="123456789012", region="us-east-1"
    )
    assert event["requestContext"]["authorizer"]["iam"]["userArn"] == BOB
    assert event["requestContext"]["http"] == {
        "method": "POST",
        "path": "/approvals",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
    }
