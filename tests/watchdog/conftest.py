"""Fixtures for the watchdog tests: in-process moto (mock_aws) with fake credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws
from wd_env import Env, make_env


@pytest.fixture
def aws(aws_credentials: dict[str, str]) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def env(aws: None) -> Env:
    return make_env()
