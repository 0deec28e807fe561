"""Secrets by reference: env, file (private only), Secrets Manager, SSM."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest

from backup_agent.engines.config import SecretRef
from backup_agent.logs import JsonFormatter
from backup_agent.secrets import SecretError, SecretResolver
from backup_contracts.redaction import RedactingFilter, redact

from .conftest import REGION

pytestmark = pytest.mark.integration


def _client(service: str) -> Any:
    return boto3.session.Session(region_name=REGION).client(service)  # type: ignore[call-overload]


def test_env_reference_resolves_from_the_environment():
    assert SecretResolver(environ={"DB_PW": "hunter2-xyz"}).resolve(SecretRef(env="DB_PW")) == "hunter2-xyz"


def test_missing_env_variable_is_a_clear_error():
    with pytest.raises(SecretError, match="DB_PW is not set"):
        SecretResolver(environ={}).resolve(SecretRef(env="DB_PW"))


def test_private_file_reference_resolves_without_trailing_newline(tmp_path: Path):
    secret = tmp_path / "pw"
    secret.write_text("file-secret-1\n")
    secret.chmod(0o600)
    assert SecretResolver().resolve(SecretRef(file=secret)) == "file-secret-1"


def test_group_or_world_readable_file_is_refused_with_the_fix(tmp_path: Path):
    secret = tmp_path / "pw"
    secret.write_text("file-secret-2")
    secret.chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        SecretResolver().resolve(SecretRef(file=secret))


def test_secrets_manager_reference_reads_the_secret_string_field(aws_env: dict[str, str]):
    sm = boto3.client("secretsmanager", region_name=REGION)
    sm.create_secret(Name="db/orders", SecretString=json.dumps({"password": "sm-secret-3"}))
    resolver = SecretResolver(client_factory=_client)
    assert resolver.resolve(SecretRef(secretsmanager="db/orders", json_key="password")) == "sm-secret-3"


def test_ssm_reference_reads_the_decrypted_parameter(aws_env: dict[str, str]):
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/db/orders/password", Value="ssm-secret-4", Type="SecureString")
    resolver = SecretResolver(client_factory=_client)
    assert resolver.resolve(SecretRef(ssm="/db/orders/password")) == "ssm-secret-4"


def test_unknown_ssm_parameter_is_a_clear_error(aws_env: dict[str, str]):
    resolver = SecretResolver(client_factory=_client)
    with pytest.raises(SecretError, match="/nope"):
        resolver.resolve(SecretRef(ssm="/nope"))


def test_resolved_secret_is_masked_in_json_logs():
    SecretResolver(environ={"PW": "very-secret-5"}).resolve(SecretRef(env="PW"))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "connecting with %s", ("very-secret-5",), None)
    RedactingFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "very-secret-5" not in line
    assert "***" in line


def test_password_shapes_are_masked_even_when_unregistered():
    assert "p4ss" not in redact("postgresql://u:p4ss@host/db password=p4ss")
