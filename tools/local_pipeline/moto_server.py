"""A moto server on a free loopback port, with fake credentials, for agents, the CLI and the demo."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from moto.server import ThreadedMotoServer

from local_pipeline.environment import environment

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class MotoEndpoint:
    url: str

    def environment(self) -> dict[str, str]:
        """What a child process (an agent, the CLI) needs to talk to this server."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310 - loopback http
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()

    def session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )


@contextmanager
def moto_server() -> Iterator[MotoEndpoint]:
    """Start a moto server; point this process's boto3 at it; restore the environment afterwards."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = MotoEndpoint(url=f"http://127.0.0.1:{port}")
    # moto keeps its state per process, not per server: start every local pipeline from nothing.
    endpoint.reset()
    try:
        with environment(endpoint.environment()):
            yield endpoint
    finally:
        server.stop()
