"""What the PostgreSQL and MariaDB engines share: client tools given the password, and the restore flow.

Both reach their server through client tools that read the password from a private 0600 file
(``ClientSecrets``), never from argv. Both restore by piping the dump into one client tool
(``DatabaseEngine.restore_database``):

- ``clone``/``drill``: a missing destination database is created, and dropped again if the restore
  into it fails; a destination that already holds data is refused before anything is written.
- a failed restore raises ``EngineError`` saying what it left behind (dropped again, rolled back,
  partially restored), so the restore executor knows whether the destination was touched.

Each engine says how its server does the steps: whether the database exists, creating it, whether
it holds data, dropping one this restore created, and the restore command.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Generic, TypeVar

from backup_agent import proc
from backup_agent.engines.base import EngineError, InvalidDumpError, RestoreMode, StreamValidator
from backup_agent.engines.config import DatabaseConfig, Resolve
from backup_agent.engines.validators import Deferred

ConfigT = TypeVar("ConfigT", bound=DatabaseConfig)


@dataclass
class ClientSecrets:
    """What one client run is given for the password: its environment, the redactor of its output,
    the secret files to remove once it ran, and the leading options naming those files."""

    env: dict[str, str]
    redact: proc.Redactor
    files: proc.SecretFiles
    options: list[str] = field(default_factory=list)


def run_client(argv: Sequence[str], secrets: ClientSecrets, sql: str, *, tool: str, stage: str) -> str:
    """Run one client command with ``sql`` on its stdin; returns its stdout, raises EngineError on failure."""
    try:
        code, out, err = proc.run_capture(argv, env=secrets.env, redact=secrets.redact, input_bytes=sql.encode())
    finally:
        secrets.files.cleanup()
    if code != 0:
        raise EngineError(
            f"{tool} failed (exit {code}): {err.strip()[-500:]}", stage=stage, exit_code=code, stderr_tail=err
        )
    return out


class DatabaseEngine(ABC, Generic[ConfigT]):
    """An engine whose target is one database on a server, restored through one client tool."""

    def __init__(self, target: str, config: ConfigT, resolve: Resolve, *, grace: float = 5.0) -> None:
        self.target = target
        self.config = config
        self._resolve = resolve
        self._grace = grace

    def _secrets(self) -> ClientSecrets:
        """The password (when configured) for one client run, resolved for each run so a rotated one is used."""
        files = proc.SecretFiles()
        redact = proc.Redactor()
        if self.config.password is None:
            return ClientSecrets(proc.child_env(), redact, files)
        password = self._resolve(self.config.password)
        redact.add(password)
        return self._password_for_client(password, files, redact)

    @abstractmethod
    def _password_for_client(self, password: str, files: proc.SecretFiles, redact: proc.Redactor) -> ClientSecrets:
        """Write ``password`` into ``files`` where this server's client tools read it."""

    @abstractmethod
    def _database_exists(self, db: str) -> bool: ...

    @abstractmethod
    def _create_database(self, db: str) -> None: ...

    @abstractmethod
    def _holds_data(self, db: str) -> bool: ...

    @abstractmethod
    def _drop_created_database(self, db: str) -> None:
        """Drop a clone destination this restore created, after the restore into it failed."""

    @abstractmethod
    def _restore_argv(self, mode: RestoreMode, db: str, secrets: ClientSecrets) -> list[str]: ...

    def restore_database(
        self, stream: BinaryIO, *, mode: RestoreMode, validator: StreamValidator, tool: str, left_behind: str
    ) -> None:
        """Pipe the dump into the restore tool, watched by ``validator``.

        ``tool`` names the tool in errors; ``left_behind`` is the destination's state after a failed
        restore into a database this restore did not create.
        """
        db = self.config.database
        created = self._prepare_clone(db) if mode in ("clone", "drill") else False
        secrets = self._secrets()
        tap = Deferred(validator)
        try:
            code, err, _out = proc.run_feed(
                self._restore_argv(mode, db, secrets), stream, env=secrets.env, redact=secrets.redact, observe=tap.feed
            )
        finally:
            secrets.files.cleanup()
        problem = _restore_problem(code, tap, tool)
        if problem is not None:
            state = self._state_after_failure(db, created=created, left_behind=left_behind)
            raise EngineError(
                f"restore into {db!r} failed: {problem}; destination {state}",
                stage="restore",
                exit_code=code,
                stderr_tail=err,
            )

    def _prepare_clone(self, db: str) -> bool:
        """Create a missing clone destination (True: this restore created it); refuse one that holds data."""
        if not self._database_exists(db):
            self._create_database(db)
            return True
        if self._holds_data(db):
            raise EngineError(
                f"clone destination database {db!r} is not empty; refusing to restore over it."
                " Fix: choose a new database name or restore in-place",
                stage="restore",
            )
        return False

    def _state_after_failure(self, db: str, *, created: bool, left_behind: str) -> str:
        if not created:
            return left_behind
        try:
            self._drop_created_database(db)
        except EngineError as exc:
            return f"partially restored and could not be dropped: {exc}"
        return "dropped again (it was created by this restore)"


def _restore_problem(code: int, tap: Deferred, tool: str) -> str | None:
    """What went wrong with a restore: the tool's exit, else the validator's verdict; None when nothing did."""
    if code != 0:
        return f"{tool} exited {code}"
    try:
        tap.finish()
    except InvalidDumpError as exc:
        return str(exc)
    return None
