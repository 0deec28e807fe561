"""Unpacking a base backup into a new data directory, owned by the OS user that will run the server.

``unpack`` streams the raw tar through ``BaseBackupValidator`` with a ``DataDirectory`` sink, so the
same checks that admitted the backup guard what lands on disk: only regular files and directories,
relative paths without ``..``, every file's size and SHA-256 as the backup's own manifest says. Files
are created ``0600`` with ``O_EXCL | O_NOFOLLOW`` and directories ``0700``, inside a directory that was
absent or empty, so nothing can be written outside it. When the agent runs as root, everything
belongs to ``server_user`` (PostgreSQL refuses to run as root); commands of the server run as that
user through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from backup_agent.engines.base import EngineError, InvalidDumpError
from backup_agent.engines.validators.pg_basebackup import BaseBackupValidator
from backup_agent.proc import CHUNK


@dataclass(frozen=True)
class ServerUser:
    """Who owns and runs a restored cluster: ``name`` None is the agent's own user."""

    name: str | None
    uid: int
    gid: int

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run as this user (through ``runuser`` when the agent is root and it is another user)."""
        if self.name is None or self.uid == os.geteuid():
            return list(argv)
        return ["runuser", "-u", self.name, "--", *argv]

    def own(self, path: Path | str) -> None:
        if os.geteuid() == 0 and self.uid != 0:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)


def server_user(name: str | None) -> ServerUser:
    """The ``ServerUser`` for a destination's ``server_user``; EngineError naming the fix when unusable."""
    root = os.geteuid() == 0
    if name is None:
        if root:
            raise EngineError(
                "the agent runs as root and PostgreSQL refuses to: the restored cluster needs an owner."
                " Fix: set server_user (e.g. server_user: postgres) in the destination's config",
                stage="config",
            )
        return ServerUser(None, os.geteuid(), os.getegid())
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise EngineError(
            f"server_user {name!r} is not an OS user of this host. Fix: create it or name an existing one (postgres)",
            stage="config",
        ) from None
    if not root and entry.pw_uid != os.geteuid():
        raise EngineError(
            f"server_user {name!r} is not the agent's own user, and only root can run a server as another user."
            " Fix: leave server_user out (the agent's user owns the cluster) or run the agent as root",
            stage="config",
        )
    return ServerUser(name, entry.pw_uid, entry.pw_gid)


class DataDirectory:
    """A ``TarSink`` writing a validated base backup into ``root`` (created beforehand, absent or empty)."""

    def __init__(self, root: Path, owner: ServerUser) -> None:
        self.root = root
        self._owner = owner
        self._fd: int | None = None
        self._made: set[str] = set()

    def _parents(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if parent and parent not in self._made:
            self.directory(parent, 0o700)

    def directory(self, path: str, mode: int) -> None:
        if path in self._made:
            return
        self._parents(path)
        target = self.root / path
        try:
            target.mkdir(mode=0o700)
        except FileExistsError:
            if target.is_symlink() or not target.is_dir():
                raise InvalidDumpError(f"tar member {path!r} is a directory where a file was unpacked") from None
        else:
            self._owner.own(target)
        self._made.add(path)

    def begin_file(self, path: str, mode: int, size: int) -> None:
        self._parents(path)
        try:
            self._fd = os.open(self.root / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            raise InvalidDumpError(f"tar member {path!r} appears twice") from None
        self._owner.own(self.root / path)

    def data(self, chunk: memoryview) -> None:
        assert self._fd is not None  # noqa: S101 - begin_file opened it
        while chunk:
            chunk = chunk[os.write(self._fd, chunk) :]

    def end_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.end_file()


def prepare(directory: Path, owner: ServerUser) -> bool:
    """Create the data directory (0700, owned by the server user); True when this call created it.

    An existing directory must be empty: a restore never writes over a cluster."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise EngineError(f"data_directory {directory} is not a directory. Fix: choose a new path", stage="restore")
    if directory.exists():
        if any(directory.iterdir()):
            raise EngineError(
                f"data_directory {directory} exists and is not empty; refusing to restore over it. Fix: choose a new"
                " data_directory, or remove the old cluster there (backup-agent drops a drill's own restore)",
                stage="restore",
            )
        created = False
    else:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700)
        created = True
    directory.chmod(0o700)
    owner.own(directory)
    return created


def empty(directory: Path, *, created: bool) -> None:
    """Remove what a failed restore unpacked: the directory itself when this restore created it."""
    if created:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for entry in list(directory.iterdir()) if directory.is_dir() else []:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def unpack(stream: BinaryIO, directory: Path, owner: ServerUser) -> dict[str, object]:
    """Unpack and check the raw base backup ``stream`` into ``directory``; its facts, or EngineError."""
    sink = DataDirectory(directory, owner)
    validator = BaseBackupValidator(sink=sink)
    try:
        while chunk := stream.read(CHUNK):
            validator.feed(chunk)
        return validator.finish()
    except InvalidDumpError as exc:
        raise EngineError(f"the base backup is not valid: {exc}", stage="restore") from exc
    except OSError as exc:
        raise EngineError(f"cannot unpack the base backup into {directory}: {exc}", stage="restore") from exc
    finally:
        sink.close()
