"""What the PostgreSQL and MariaDB engines share: client tools given the password, and the restore flow.

Both reach their server through client tools that read the password from a private 0600 file
(``ClientSecrets``), never from argv. Both restore by piping the dump into one client tool
(``DatabaseEngine.restore_database``):

- ``clone``/``drill``: a missing destination database is created, and dropped again if the restore
  into it fails; a destination that already holds data is refused before anything is written.
- a failed restore raises ``EngineError`` saying what it left behind (dropped again, rolled back,
  partially restored), so the restore executor knows whether the destination was touched.

Each engine says how its server does the steps: whether the database exists, creating it (with the
source database's properties from the manifest: encoding, collation, settings, comment...), whether
it holds data, dropping one this restore created, and the restore command.

An engine whose restore tool can work in parallel from a file (``seekable_restore``: PostgreSQL's
``pg_restore -j``) is given a ``VerifiedArchive`` instead of a stream: the raw dump, decompressed to
disk while it was downloaded and checked whole (size, SHA-256, format) before anything was written.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

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


@dataclass(frozen=True)
class VerifiedArchive:
    """The raw dump as a seekable file, already checked whole by ``validator`` (and its object's size
    and SHA-256 by the download) before the restore starts."""

    path: Path
    validator: StreamValidator


@dataclass
class Destination:
    """What preparing the destination did: whether this restore created it, and notes for the report."""

    created: bool = False
    notes: list[str] = field(default_factory=list)


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

    seekable_restore = False  # True: restores from a VerifiedArchive file (in parallel) when given one
    absent = False  # found by check(): the database does not exist yet (a clone or drill restore creates it)

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

    compared_properties = "its properties"  # what ``database_properties_differ`` compares, in words

    def database_properties(self) -> dict[str, Any]:
        """The target database's own properties (what a dump of its contents does not carry), for the
        manifest; a clone recreates them."""
        return self.database_properties_of(self.config.database, stage="dump")

    @abstractmethod
    def database_properties_of(self, db: str, *, stage: str = "restore") -> dict[str, Any]: ...

    @abstractmethod
    def property_differences(self, source: Mapping[str, Any], restored: Mapping[str, Any]) -> list[str]:
        """What of the source's properties the restored database does not have, in words."""

    def compare_properties(self, db: str, source: Mapping[str, Any], destination: Destination) -> dict[str, Any]:
        """The restore report's facts on how the restored database's properties compare with the source's."""
        if not source:
            return {"database_properties": "not in the backup's manifest (made by an older agent)"}
        differ = self.property_differences(source, self.database_properties_of(db))
        facts: dict[str, Any] = {"database_created": destination.created}
        if destination.notes:
            facts["database_notes"] = destination.notes
        if differ:
            facts["database_properties_differ"] = differ
        else:
            facts["database_properties"] = f"equal to the source's ({self.compared_properties})"
        return facts

    @abstractmethod
    def _database_exists(self, db: str) -> bool: ...

    @abstractmethod
    def _create_database(self, db: str, properties: Mapping[str, Any]) -> list[str]:
        """Create ``db`` with the source's ``properties`` (may be empty: old backups); returns notes
        on what could not be recreated. Raises EngineError, leaving no database behind, on failure."""

    @abstractmethod
    def _holds_data(self, db: str) -> bool: ...

    @abstractmethod
    def _drop_created_database(self, db: str) -> None:
        """Drop a clone destination this restore created, after the restore into it failed."""

    @abstractmethod
    def _restore_argv(
        self, mode: RestoreMode, db: str, secrets: ClientSecrets, archive: Path | None = None
    ) -> list[str]:
        """The restore command: reading the dump on stdin, or from ``archive`` when one is given."""

    def restore_database(
        self,
        stream: BinaryIO,
        *,
        mode: RestoreMode,
        validator: StreamValidator,
        tool: str,
        left_behind: str,
        properties: Mapping[str, Any] | None = None,
        archive: VerifiedArchive | None = None,
    ) -> Destination:
        """Pipe the dump into the restore tool, watched by ``validator`` (or, given a verified
        ``archive``, let the tool read that file).

        ``tool`` names the tool in errors; ``left_behind`` is the destination's state after a failed
        restore into a database this restore did not create; ``properties`` are the source
        database's, for a clone destination this restore creates.
        """
        db = self.config.database
        destination = self._prepare_clone(db, properties or {}) if mode in ("clone", "drill") else Destination()
        secrets = self._secrets()
        tap = Deferred(validator)
        feed = io.BytesIO() if archive is not None else stream
        try:
            code, err, _out = proc.run_feed(
                self._restore_argv(mode, db, secrets, archive.path if archive is not None else None),
                feed,
                env=secrets.env,
                redact=secrets.redact,
                observe=tap.feed if archive is None else None,
            )
        finally:
            secrets.files.cleanup()
        if archive is None:
            problem = _restore_problem(code, tap, tool)
        else:  # the archive was validated whole before the restore began
            problem = f"{tool} exited {code}" if code != 0 else None
        if problem is not None:
            state = self._state_after_failure(db, created=destination.created, left_behind=left_behind)
            raise EngineError(
                f"restore into {db!r} failed: {problem}; destination {state}",
                stage="restore",
                exit_code=code,
                stderr_tail=err,
            )
        return destination

    def _prepare_clone(self, db: str, properties: Mapping[str, Any]) -> Destination:
        """Create a missing clone destination with the source's properties; refuse one that holds data."""
        if not self._database_exists(db):
            return Destination(created=True, notes=self._create_database(db, properties))
        if self._holds_data(db):
            raise EngineError(
                f"clone destination database {db!r} is not empty; refusing to restore over it."
                " Fix: choose a new database name or restore in-place",
                stage="restore",
            )
        return Destination(notes=["the destination database existed (empty): its own properties were kept"])

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
