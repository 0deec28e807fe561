"""Secrets by reference: a target's config names where a secret lives, never the secret itself.

Supported references (one key each): ``{env: VAR}``, ``{file: /path}`` (must not be readable by
group or others), ``{secretsmanager: id-or-arn}`` (its SecretString; ``json_key`` picks one field of a
JSON secret) and ``{ssm: /parameter/name}`` (decrypted). Every resolved value is registered for
redaction before it is returned, and a variable an ``{env: VAR}`` reference names is hidden from every
child process (``backup_agent.proc.hide_variables``): the engine passes the value on only to its own.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backup_agent.proc import hide_variables
from backup_contracts.redaction import register_secret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_ssm.client import SSMClient

ClientFactory = Callable[[str], Any]  # a boto3 client by service name


class SecretError(Exception):
    """A secret reference cannot be resolved; the message says which reference and how to fix it."""


def _field(ref: object, *names: str) -> Any:
    for name in names:
        value = ref.get(name) if isinstance(ref, Mapping) else getattr(ref, name, None)
        if value is not None:
            return value
    return None


class SecretResolver:
    """Resolves secret references; AWS clients come from an injectable factory (default: boto3)."""

    def __init__(self, client_factory: ClientFactory | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._client_factory = client_factory
        self._environ = environ if environ is not None else os.environ
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            if self._client_factory is not None:
                self._clients[service] = self._client_factory(service)
            else:
                from backup_agent.aws import client

                self._clients[service] = client(service)
        return self._clients[service]

    def _secretsmanager(self) -> SecretsManagerClient:
        return self._client("secretsmanager")

    def _ssm(self) -> SSMClient:
        return self._client("ssm")

    def resolve(self, ref: object) -> str:
        value = self._resolve(ref)
        register_secret(value)
        return value

    __call__ = resolve

    def _resolve(self, ref: object) -> str:
        if isinstance(ref, str):
            raise SecretError("a secret must be given by reference ({env: VAR}, {file: PATH}, ...), not inline")
        env = _field(ref, "env")
        if env is not None:
            return self._from_env(str(env))
        file = _field(ref, "file")
        if file is not None:
            return self._from_file(Path(str(file)))
        secret_id = _field(ref, "secretsmanager", "secrets_manager", "secret_id")
        if secret_id is not None:
            return self._from_secrets_manager(str(secret_id), _field(ref, "json_key", "key"))
        parameter = _field(ref, "ssm", "parameter")
        if parameter is not None:
            return self._from_ssm(str(parameter))
        raise SecretError("empty secret reference. Fix: give exactly one of env, file, secretsmanager or ssm")

    def _from_env(self, name: str) -> str:
        hide_variables([name])  # the value goes to the target that asked for it, never to any other child
        value = self._environ.get(name)
        if value is None:
            raise SecretError(
                f"environment variable {name} is not set. Fix: export it in the agent's environment "
                "(e.g. an EnvironmentFile= in the systemd unit)"
            )
        return value

    @staticmethod
    def _from_file(path: Path) -> str:
        try:
            info = path.stat()
        except OSError as exc:
            raise SecretError(f"secret file {path} cannot be read: {exc.strerror}") from exc
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"secret file {path} is accessible by group or others (mode {stat.filemode(info.st_mode)}). "
                f"Fix: chmod 600 {path}"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"secret file {path} cannot be read: {exc.strerror}") from exc
        value = text.rstrip("\r\n")
        if not value:
            raise SecretError(f"secret file {path} is empty")
        return value

    def _from_secrets_manager(self, secret_id: str, json_key: object) -> str:
        try:
            response = self._secretsmanager().get_secret_value(SecretId=secret_id)
        except Exception as exc:
            raise SecretError(f"Secrets Manager secret {secret_id!r} cannot be read: {exc}") from exc
        value = response.get("SecretString")
        if value is None:
            raise SecretError(f"Secrets Manager secret {secret_id!r} has no SecretString (binary secrets unsupported)")
        if json_key is not None:
            try:
                value = json.loads(value)[str(json_key)]
            except (ValueError, KeyError, TypeError) as exc:
                raise SecretError(f"Secrets Manager secret {secret_id!r} has no JSON field {json_key!r}") from exc
        return str(value)

    def _from_ssm(self, name: str) -> str:
        try:
            response = self._ssm().get_parameter(Name=name, WithDecryption=True)
        except Exception as exc:
            raise SecretError(f"SSM parameter {name!r} cannot be read: {exc}") from exc
        return str(response["Parameter"]["Value"])


_default = SecretResolver()


def resolve(ref: object) -> str:
    """Resolve one secret reference with the default resolver (boto3 clients created on first use)."""
    return _default.resolve(ref)
