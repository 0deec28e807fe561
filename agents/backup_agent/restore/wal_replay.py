"""Restores of a PITR target: the WAL index a job points at, and the ``restore_command`` that replays it.

A restore of a ``postgresql-physical`` backup replays archived WAL after the base backup. The job's
``source.wal`` (``backup_contracts.jobs.WalReplay``) carries a presigned URL of the ``WalIndex`` (the
archived files to replay, each with its own presigned URL and SHA-256) and the index's own size and
SHA-256. ``wal_recovery``:

1. downloads the index (retrying transient errors) and refuses it unless its size and SHA-256 are the
   job's, it is a valid index of the source target, and it lists the files the job says it does;
2. writes it into a fresh private directory (0700) that the restored server's OS user owns
   (``server_user`` of the destination; the directory is in the system's temporary directory, which
   that user can reach, unlike the agent's state_dir);
3. yields the ``Recovery`` for ``RecoveringEngine.restore_with_wal``: ``restore_command`` runs this
   agent's own interpreter, ``<python> -P -m backup_agent.entry wal-fetch --index <dir>/wal-index.json %f
   %p`` (every part shell-quoted; ``-P``: nothing in the data directory can shadow the agent's modules),
   except for a file wal-fetch already prefetched and checked, which the shell moves into place
   (``recovery_for``), and ``target_time`` for a time target;
4. removes the directory (index and prefetch cache) when the restore is over, whatever happened.

``check_wal`` is the config stage: a physical destination needs ``source.wal``, and ``source.wal`` needs
a destination that replays WAL.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from backup_agent.engines.base import Engine, RecoveringEngine, Recovery
from backup_agent.presigned import Opener, safe_url
from backup_agent.restore.failure import RestoreFailure
from backup_agent.wal.fetch import CACHE_DIR, DownloadError, fetch_bytes
from backup_contracts.jobs import Job, WalReplay
from backup_contracts.wal import WalIndex

INDEX_FILE = "wal-index.json"


def check_wal(job: Job, engine: Engine) -> None:
    """Raise the config-stage failure of a job whose WAL and destination do not go together."""
    wal = job.source.wal if job.source is not None else None
    destination = job.destination or job.target
    if isinstance(engine, RecoveringEngine) and wal is None:
        raise RestoreFailure(
            "config",
            f"destination {destination!r} is a {engine.name} target: its restore replays archived WAL, but job"
            f" {job.job_id} carries none (source.wal). Fix: request the restore as a Restore Requested event"
            " (backupctl restore), so the coordinator lists the WAL to replay",
        )
    if wal is not None and not isinstance(engine, RecoveringEngine):
        raise RestoreFailure(
            "config",
            f"job {job.job_id} replays archived WAL, but destination {destination!r} is a {engine.name} target,"
            " which cannot. Fix: restore a PITR target into a postgresql-physical destination",
        )
    if wal is not None and wal.index_url is None:
        raise RestoreFailure(
            "config",
            f"job {job.job_id} carries no URL for its WAL index (it is signed each time the job is sent)."
            " Fix: request the restore again",
        )


@contextlib.contextmanager
def wal_recovery(job: Job, engine: Engine, *, opener: Opener) -> Iterator[Recovery | None]:
    """The ``Recovery`` of a job with ``source.wal`` (None without), its index written for the server."""
    wal = job.source.wal if job.source is not None else None
    if wal is None or job.source is None:
        yield None
        return
    index = _download_index(wal, job.source.target, opener)
    user = server_user(engine)
    directory = Path(tempfile.mkdtemp(prefix=f"backup-agent-wal-{job.restore_id or job.job_id}-"))
    try:
        path = directory / INDEX_FILE
        path.write_bytes(index)
        path.chmod(0o600)
        if user is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(user)
            for owned in (directory, path):
                os.chown(owned, entry.pw_uid, entry.pw_gid)
        yield recovery_for(wal, path, python=agent_python(engine))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def recovery_for(wal: WalReplay, index_path: Path, *, python: str | None = None) -> Recovery:
    """The restore_command runs ``python`` (default: this agent's own interpreter) on the written index.

    A file wal-fetch already prefetched (checked, in the cache beside the index) is moved into place by
    the shell itself: no interpreter starts for it, so a process start (~0.2 s) is paid once per batch
    of files, not per file. Every other name goes to wal-fetch, which fetches, checks and refills."""
    argv = [python or sys.executable, "-P", "-m", "backup_agent.entry", "wal-fetch", "--index", str(index_path)]
    cached = _literal(shlex.quote(str(index_path.parent / CACHE_DIR)))
    command = (
        f'f={cached}/%f; if [ -f "$f" ]; then mv -f "$f" %p.fetch && mv -f %p.fetch %p;'
        f" else {_literal(shlex.join(argv))} %f %p; fi"
    )
    return Recovery(restore_command=command, target_time=wal.recovery_target_time, target=wal.recovery_target)


def _literal(text: str) -> str:
    """``text`` as PostgreSQL passes it to the shell: it expands %f and %p, and %% is a literal %."""
    return text.replace("%", "%%")


def agent_python(engine: Engine) -> str | None:
    """The interpreter the destination's server user runs wal-fetch with (``agent_python``), if it says."""
    python = getattr(getattr(engine, "config", None), "agent_python", None)
    return str(python) if python is not None else None


def server_user(engine: Engine) -> str | None:
    """The OS user the destination's server runs as (``server_user`` of its config), if it says."""
    user = getattr(getattr(engine, "config", None), "server_user", None)
    return user if isinstance(user, str) and user else None


def _download_index(wal: WalReplay, target: str, opener: Opener) -> bytes:
    assert wal.index_url is not None  # noqa: S101 - check_wal() refused a job without one
    url = str(wal.index_url)
    try:
        body = fetch_bytes(url, wal.index_bytes, opener=opener)
    except DownloadError as exc:
        raise RestoreFailure("download", f"cannot download the WAL index: {exc}") from exc
    if len(body) != wal.index_bytes:
        raise RestoreFailure(
            "verify-object",
            f"the WAL index {safe_url(url)} has {len(body)} bytes, the job recorded {wal.index_bytes}: refusing it"
            " (destination untouched)",
        )
    digest = hashlib.sha256(body).hexdigest()
    if digest != wal.index_sha256:
        raise RestoreFailure(
            "verify-object",
            f"the WAL index's SHA-256 is {digest}, the job recorded {wal.index_sha256}: it was changed; refusing"
            " it (destination untouched)",
        )
    try:
        index = WalIndex.model_validate_json(body)
    except ValidationError as exc:
        raise RestoreFailure("verify-object", f"the WAL index is not valid: {exc.error_count()} problem(s)") from exc
    problems = []
    if index.target != target:
        problems.append(f"it lists WAL of target {index.target!r}, the backup is of {target!r}")
    if len(index.files) != wal.files:
        problems.append(f"it lists {len(index.files)} files, the job says {wal.files}")
    if index.files and index.files[-1].name != wal.last_file:
        problems.append(f"its last file is {index.files[-1].name}, the job says {wal.last_file}")
    if problems:
        raise RestoreFailure("verify-object", f"the WAL index does not match the job: {'; '.join(problems)}")
    return body
