"""What every test suite shares: fake AWS credentials, a moto server, a Lambda context, the functions'
captured JSON logs — and the test tiers.

Tiers (``pytest -m unit`` runs one alone):

- ``unit``: pure Python with in-memory fakes or botocore Stubbers; sockets are blocked, so a unit test
  that tries to reach a network fails;
- ``integration``: against moto (in-process or its server), the real local PostgreSQL and MariaDB, or
  real agent processes;
- ``infrastructure``: the synthesized CDK stack (assertions, cdk-nag, policies);
- ``e2e``: the whole local pipeline, as ``make demo`` runs it.

Every test module says its tier with ``pytestmark``; collection fails for a test without exactly one.
"""

from __future__ import annotations

import io
import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

# Powertools reads these when backup_functions.observability is imported (at collection time).
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "backup-pipeline-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "BackupPipelineTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

TIERS = ("unit", "integration", "infrastructure", "e2e")
REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    untiered = []
    for item in items:
        tiers = [tier for tier in TIERS if item.get_closest_marker(tier)]
        if len(tiers) != 1:
            untiered.append(f"{item.nodeid} ({', '.join(tiers) or 'no tier'})")
        elif tiers == ["unit"]:
            item.add_marker(pytest.mark.disable_socket)
    if untiered:
        listed = "\n  ".join(untiered[:20])
        raise pytest.UsageError(
            f"{len(untiered)} test(s) without exactly one tier marker ({', '.join(TIERS)}); add"
            f" `pytestmark = pytest.mark.<tier>` to the module:\n  {listed}"
        )


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake credentials in one region; no profile, no endpoint: nothing can reach real AWS."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return dict(FAKE_CREDENTIALS)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server on a free loopback port for the whole session (reset per test by ``aws_env``)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, aws_credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 (here and in child processes) at the moto server, freshly reset."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")  # noqa: S310 - loopback moto
    urllib.request.urlopen(request).read()  # noqa: S310 - loopback moto server
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return {**aws_credentials, "AWS_ENDPOINT_URL": moto_endpoint}


@pytest.fixture
def lambda_context() -> Any:
    """The context Lambda passes a handler (the local pipeline's, the one definition of it)."""
    from local_pipeline.runner import LambdaContext

    name = "backup-pipeline-test-fn"
    return LambdaContext(
        function_name=name,
        aws_request_id="00000000-0000-0000-0000-000000000000",
        invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:{name}",
    )


class FunctionLogs:
    """The JSON lines the functions' Powertools handler wrote during a test."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._stream.getvalue().splitlines() if line.strip()]

    def text(self) -> str:
        return self._stream.getvalue()


@pytest.fixture
def function_logs() -> Iterator[FunctionLogs]:
    """Capture what every logger of the functions writes (through Powertools' one handler)."""
    from backup_functions.observability import logger

    handler = logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield FunctionLogs(stream)
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many cases each fuzz test ran, and how long (tests/fuzzing.py)."""
    from fuzzing import summary_lines

    for line in summary_lines():
        terminalreporter.write_line(line)
