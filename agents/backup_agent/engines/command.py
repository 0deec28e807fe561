"""Command: any dump command that writes the dump to stdout, and its restore command reading stdin.

This is how engines without a built-in driver are supported, MongoDB first among them::

    mongo-main:
      engine: command
      dump_command: [mongodump, --archive, --host=127.0.0.1, --username=backup, --authenticationDatabase=admin]
      restore_command: [mongorestore, --archive, --drop]
      format: mongodump-archive
      extension: archive
      magic_hex: 6de29981          # mongodump archive magic (0x8199e26d, little-endian)
      env:
        MONGODB_PASSWORD: {secretsmanager: prod/mongo, json_key: password}

Secrets belong in ``env`` (resolved references land only in the child's environment; wrap the tool
in a small script that reads them, or use tools that take passwords from a config file such as
``mongodump --config=<file>``) — never in ``dump_command``: argv is visible in the process list.
Resolved values are masked in the stderr tail. The format check is: non-empty output, plus the
optional ``magic_hex`` prefix; a non-zero exit fails the dump or the restore.
"""

from __future__ import annotations

import shutil
from typing import BinaryIO

from backup_agent import proc
from backup_agent.engines.base import EngineError, InvalidDumpError, RestoreMode, RestoreReport, Versions
from backup_agent.engines.config import CommandConfig, Resolve, SecretRef
from backup_agent.engines.running import ProcessDump
from backup_agent.engines.validators import Deferred, NonEmptyValidator


class CommandEngine:
    name = "command"

    def __init__(self, target: str, config: CommandConfig, resolve: Resolve, *, grace: float = 5.0) -> None:
        self.target = target
        self.config = config
        self.format = config.format
        self.extension = config.extension
        self._resolve = resolve
        self._grace = grace

    def _env(self) -> tuple[dict[str, str], proc.Redactor]:
        redact = proc.Redactor()
        extra: dict[str, str] = {}
        for key, value in self.config.env.items():
            if isinstance(value, SecretRef):
                resolved = self._resolve(value)
                redact.add(resolved)
                extra[key] = resolved
            else:
                extra[key] = value
        secrets = [v for k, v in extra.items() if isinstance(self.config.env[k], SecretRef)]
        return proc.child_env(extra, secrets=secrets), redact

    def _magic(self) -> bytes | None:
        return bytes.fromhex(self.config.magic_hex) if self.config.magic_hex else None

    def versions(self) -> Versions:
        return Versions(
            tool_version=shutil.which(self.config.dump_command[0]) and self.config.dump_command[0], server_version=None
        )

    def check(self) -> list[str]:
        return [
            f"{role} command {argv[0]!r} not found. Fix: install it or give its full path"
            for role, argv in (("dump", self.config.dump_command), ("restore", self.config.restore_command))
            if shutil.which(argv[0]) is None
        ]

    def start_dump(self) -> ProcessDump:
        env, redact = self._env()
        return ProcessDump(self.config.dump_command, env=env, redact=redact, grace=self._grace)

    def validator(self) -> NonEmptyValidator:
        return NonEmptyValidator(self._magic())

    def drop_restored(self) -> str:
        """The command engine cannot know how to clear a destination; say so instead of guessing."""
        return f"no cleanup for command target {self.target!r}: clear the scratch destination with its own tools"

    def restore(self, stream: BinaryIO, *, mode: RestoreMode) -> RestoreReport:
        env, redact = self._env()
        validator = Deferred(NonEmptyValidator(self._magic()))
        code, err, out = proc.run_feed(
            self.config.restore_command, stream, env=env, redact=redact, observe=validator.feed
        )
        if code != 0:
            raise EngineError(f"restore command exited {code}", stage="restore", exit_code=code, stderr_tail=err)
        try:
            facts = validator.finish()
        except InvalidDumpError as exc:
            raise EngineError(f"restore refused: {exc}", stage="restore") from exc
        facts["restore_exit_code"] = code
        facts["stdout_tail"] = proc.tail_text(out, redact, 1024)
        return RestoreReport(destination=f"command:{self.config.restore_command[0]}", verification=facts)
