"""Files/volumes: a POSIX tar stream of configured absolute paths, with GNU tar ``--exclude`` patterns.

Dump: ``tar --create --file=- --format=posix --sparse --sparse-version=1.0 --numeric-owner --directory=/
[--exclude=P ...] -- <paths relative to />``; members are stored as ``home/app/uploads/...``.

Sparse files stay sparse: GNU tar stores only their data regions, with a map of where they lie, in
the PAX 1.0 sparse format (pinned with ``--sparse-version=1.0`` whatever the tar build's default;
the map sits in the member's data, so extended headers stay small, and non-GNU tars still extract
the data with the map in front), and ``tar --extract`` recreates the holes in every restore mode: a
20 MB file holding 4 KiB of data comes back as 4 KiB on disk. Only files with fewer blocks than their
size are scanned for holes, so ordinary files cost nothing extra. The validator checks each sparse
map against the member it belongs to.

GNU tar exits 1 when a file changed while it was read (live log directories); that case alone, when
every stderr line says so, counts as success (the archive is still well-formed, which the validator
checks). Any other non-zero exit fails the dump.

Restore:
- ``clone``/``drill``: extract into a fresh staging directory beside ``restore_dir``, then rename it
  to ``restore_dir`` (which must be missing or empty); the paths reappear below it
  (``<restore_dir>/home/app/uploads``).
- ``in-place``: for every configured path, one ``tar --extract`` (all fed from the same stream)
  extracts just that path into a staging directory beside it (same filesystem); only when every
  extraction succeeded are the paths swapped: the old one renamed aside, the new one renamed in, the
  old one removed. A failure before the swap leaves every path untouched. Extraction keeps modes and
  (as root) numeric owners.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO

from backup_agent import proc
from backup_agent.engines.base import EngineError, InvalidDumpError, RestoreMode, RestoreReport, Versions
from backup_agent.engines.config import FilesConfig, Resolve
from backup_agent.engines.running import ProcessDump
from backup_agent.engines.validators import Deferred, TarValidator

_CHANGED = ("file changed as we read it", "file removed before we read it")


def _tar_exit(code: int, stderr: bytes) -> int:
    if code != 1:
        return code
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return 0 if lines and all(any(marker in line for marker in _CHANGED) for line in lines) else code


def _tree_facts(root: Path) -> dict[str, int]:
    files = dirs = size = 0
    if root.is_file():
        return {"files": 1, "dirs": 0, "file_bytes": root.stat().st_size}
    for _dirpath, dirnames, filenames in os.walk(root):
        dirs += len(dirnames)
        for name in filenames:
            files += 1
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(_dirpath, name)).st_size
    return {"files": files, "dirs": dirs, "file_bytes": size}


class FilesEngine:
    name = "files"
    format = "tar"
    extension = "tar"

    def __init__(self, target: str, config: FilesConfig, resolve: Resolve | None = None, *, grace: float = 5.0) -> None:
        self.target = target
        self.config = config
        self._grace = grace

    def _members(self) -> list[str]:
        return [path.relative_to("/").as_posix() for path in self.config.paths]

    def dump_argv(self) -> list[str]:
        return [
            self.config.tar,
            "--create",
            "--file=-",
            "--format=posix",
            "--sparse",
            "--sparse-version=1.0",
            "--numeric-owner",
            "--directory=/",
            *(f"--exclude={pattern}" for pattern in self.config.excludes),
            "--",
            *self._members(),
        ]

    def _extract_argv(self, directory: Path, members: list[str]) -> list[str]:
        return [
            self.config.tar,
            "--extract",
            "--file=-",
            f"--directory={directory}",
            "--numeric-owner",
            "--preserve-permissions",
            "--",
            *members,
        ]

    def versions(self) -> Versions:
        code, out, _ = proc.run_capture([self.config.tar, "--version"], env=None, redact=proc.Redactor())
        return Versions(tool_version=out.splitlines()[0] if code == 0 and out else None, server_version=None)

    def check(self) -> list[str]:
        problems: list[str] = []
        if shutil.which(self.config.tar) is None:
            problems.append(f"{self.config.tar} not found on PATH. Fix: install GNU tar")
        for path in self.config.paths:
            if not path.exists():
                problems.append(f"path {str(path)!r} does not exist")
            elif not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
                problems.append(f"path {str(path)!r} is not readable by this user")
        return problems

    def start_dump(self) -> ProcessDump:
        return ProcessDump(
            self.dump_argv(), env=proc.child_env(), redact=proc.Redactor(), grace=self._grace, map_exit=_tar_exit
        )

    def validator(self) -> TarValidator:
        return TarValidator()

    def _extract(self, stream: BinaryIO, jobs: list[tuple[Path, list[str]]]) -> TarValidator:
        validator = TarValidator()
        tap = Deferred(validator)
        procs = [proc.spawn(self._extract_argv(d, m), stdin=-1, stdout=None) for d, m in jobs]
        errs = [proc.StderrCollector(p.stderr) for p in procs]
        try:
            proc.pump(stream, procs, observe=tap.feed, drain=True)
            codes = [p.wait() for p in procs]
        except BaseException:
            for p in procs:
                proc.kill_group(p, self._grace)
            raise
        for code, err in zip(codes, errs, strict=True):
            tail = proc.tail_text(err.join(), proc.Redactor())
            if code != 0:
                raise EngineError(
                    f"tar --extract exited {code}: {tail.strip()[-500:]}",
                    stage="restore",
                    exit_code=code,
                    stderr_tail=tail,
                )
        try:
            tap.finish()
        except InvalidDumpError as exc:
            raise EngineError(f"restore refused: {exc}", stage="restore") from exc
        return validator

    def drop_restored(self) -> str:
        """Remove ``restore_dir`` (the clone/drill destination); the configured live paths are never touched."""
        if self.config.restore_dir is None:
            raise EngineError(f"target {self.target!r} has no restore_dir to clean up", stage="cleanup")
        shutil.rmtree(self.config.restore_dir, ignore_errors=True)
        return f"removed {self.config.restore_dir}"

    def restore(self, stream: BinaryIO, *, mode: RestoreMode) -> RestoreReport:
        if mode in ("clone", "drill"):
            return self._restore_clone(stream)
        return self._restore_in_place(stream)

    def _restore_clone(self, stream: BinaryIO) -> RestoreReport:
        dest = self.config.restore_dir
        if dest is None:
            raise EngineError(
                f"target {self.target!r} has no restore_dir for clone restores. Fix: set restore_dir", stage="restore"
            )
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise EngineError(
                f"clone destination {str(dest)!r} is not an empty directory; refusing to restore over it",
                stage="restore",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.restore-", dir=dest.parent))
        try:
            validator = self._extract(stream, [(staging, self._members())])
            os.chmod(staging, 0o755)  # noqa: S103 - mkdtemp's 0700 would hide the clone from its users
            if dest.exists():
                dest.rmdir()
            os.rename(staging, dest)
            proc.fsync_dir(dest.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        archive = validator.finish()
        facts: dict[str, object] = {"archive": archive, "bytes": archive["bytes"]}
        facts.update(_tree_facts(dest))
        return RestoreReport(destination=str(dest), verification=facts)

    def _restore_in_place(self, stream: BinaryIO) -> RestoreReport:
        jobs: list[tuple[Path, list[str]]] = []
        try:
            for path in self.config.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.restore-", dir=path.parent))
                jobs.append((staging, [path.relative_to("/").as_posix()]))
            validator = self._extract(stream, jobs)
            for (staging, members), path in zip(jobs, self.config.paths, strict=True):
                if not (staging / members[0]).exists() and not (staging / members[0]).is_symlink():
                    raise EngineError(f"the archive does not contain {str(path)!r}", stage="restore")
        except BaseException:
            for staging, _ in jobs:
                shutil.rmtree(staging, ignore_errors=True)
            raise
        swapped: list[str] = []
        for (staging, members), path in zip(jobs, self.config.paths, strict=True):
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            try:
                had_old = path.exists() or path.is_symlink()
                if had_old:
                    os.rename(path, old)
                os.rename(staging / members[0], path)
                proc.fsync_dir(path.parent)
            except OSError as exc:
                raise EngineError(
                    f"swapping {str(path)!r} failed after {len(swapped)} of {len(jobs)} paths were restored"
                    f" ({', '.join(swapped) or 'none'}); the previous content is at {str(old)!r}: {exc}",
                    stage="restore",
                ) from exc
            swapped.append(str(path))
            if had_old:
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        archive = validator.finish()
        facts: dict[str, object] = {"archive": archive, "bytes": archive["bytes"], "paths": swapped}
        totals = {"files": 0, "dirs": 0, "file_bytes": 0}
        for path in self.config.paths:
            for key, value in _tree_facts(path).items():
                totals[key] += value
        facts.update(totals)
        return RestoreReport(destination=", ".join(swapped), verification=facts)
