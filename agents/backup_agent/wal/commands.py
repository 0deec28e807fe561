"""The ``wal-push`` and ``wal-fetch`` subcommands of ``backup-agent``, and the owed ``WAL Archived`` events.

``backup-agent [--config PATH] wal-push --target TARGET [--parallel N] PATH`` (``archive_command``):
exit 0 only once the file is stored; 1 when it is not (PostgreSQL retries; the log says why and the
fix); 2 config error. Its ``WAL Archived`` event (and any still owed) is then put on the bus; if the
bus refuses, the archive still succeeded: the event stays owed in the journal and is re-sent by the
next ``wal-push`` and when ``backup-agent run`` starts (``resend_owed_wal``).

``backup-agent wal-fetch --index INDEX NAME DEST`` (``restore_command``, needs no agent config): exit
0 with DEST written, 1 when the index does not list NAME, 200 when it lists it but the file cannot be
fetched or fails its checks (PostgreSQL then aborts the recovery instead of ending it early).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backup_agent.aws import S3_UPLOAD_SETTINGS, client, client_config
from backup_agent.config import AgentConfig
from backup_agent.engines.pg_physical_config import PostgresPhysicalConfig
from backup_agent.wal.fetch import PREFETCH, WalFetcher, WalFetchError
from backup_agent.wal.journal import JournalError, WalJournal
from backup_agent.wal.push import DEFAULT_PARALLEL, PARALLEL_MAX, PushReport, WalPusher, WalPushError
from backup_contracts.eventbus import put_events
from backup_contracts.wal import WalArchived

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient

log = logging.getLogger("backup_agent.wal")

EXIT_OK, EXIT_NOT_STORED, EXIT_CONFIG = 0, 1, 2
EXIT_NOT_IN_INDEX, EXIT_ABORT_RECOVERY = 1, 200  # > 128: PostgreSQL aborts recovery (126, 127 read as shell errors)
OWED_PER_CALL = 100  # events re-sent by one wal-push at most (10 PutEvents calls)
BATCH = 10


def add_parsers(sub: Any) -> None:
    push = sub.add_parser(
        "wal-push", help="archive one WAL file (PostgreSQL's archive_command: ... wal-push --target T %%p)"
    )
    push.add_argument("--target", required=True, metavar="TARGET", help="the postgresql-physical target")
    push.add_argument(
        "--parallel",
        type=int,
        default=DEFAULT_PARALLEL,
        metavar="N",
        help=f"files pushed at once: this one and up to N-1 already marked ready (1-{PARALLEL_MAX};"
        f" default {DEFAULT_PARALLEL})",
    )
    push.add_argument("path", metavar="PATH", help="the WAL file (%%p)")
    fetch = sub.add_parser(
        "wal-fetch", help="fetch one archived WAL file for a restore (restore_command: ... wal-fetch --index I %%f %%p)"
    )
    fetch.add_argument("--index", required=True, metavar="INDEX", help="the restore's WAL index (written by the agent)")
    fetch.add_argument(
        "--prefetch",
        type=int,
        default=PREFETCH,
        metavar="N",
        help=f"files after NAME fetched with it into the cache beside the index (0-64; default {PREFETCH})",
    )
    fetch.add_argument("name", metavar="NAME", help="the WAL file name (%%f)")
    fetch.add_argument("dest", metavar="DEST", help="where to write it (%%p)")


# --------------------------------------------------------------------------- wal-push


def _events_client(config: AgentConfig) -> EventBridgeClient:
    """Few attempts and short timeouts: archiving never waits long for the bus (the event stays owed)."""
    return client("events", region=config.region, config=client_config(max_attempts=2, read_timeout=5))


def cmd_wal_push(config: AgentConfig, args: argparse.Namespace) -> int:
    target = args.target
    problem = _target_problem(config, target)
    if problem:
        log.error("%s", problem)
        return EXIT_CONFIG
    if not 1 <= args.parallel <= PARALLEL_MAX:
        log.error("--parallel %d is out of range. Fix: use 1 to %d", args.parallel, PARALLEL_MAX)
        return EXIT_CONFIG
    try:
        journal = WalJournal(config.state_dir, target)
        settings = client_config(max_attempts=config.upload.max_attempts, pool=args.parallel + 2, s3=S3_UPLOAD_SETTINGS)
        pusher = WalPusher(
            config,
            target,
            s3=lambda: client("s3", region=config.region, config=settings),
            journal=journal,
            parallel=args.parallel,
        )
        report = pusher.push(Path(args.path))
    except (WalPushError, JournalError) as exc:
        log.error("WAL file %s NOT archived: %s", Path(args.path).name, exc, extra={"ctx_target": target})
        return EXIT_NOT_STORED
    _log_report(report)
    if journal.owed(1):  # the bus client only when an event is owed: a file found stored needs none
        send_owed(journal, _events_client(config), config.bus_name)
    return EXIT_OK


def _target_problem(config: AgentConfig, target: str) -> str | None:
    if target not in config.targets:
        known = ", ".join(sorted(config.targets))
        return (
            f"target {target!r} is not in this host's config (known: {known}). Fix: pass the PITR target's name"
            " to --target"
        )
    chosen = config.targets[target]
    if not isinstance(chosen, PostgresPhysicalConfig):
        return (
            f"target {target!r} is a {chosen.engine} target; WAL is archived for postgresql-physical targets only."
            " Fix: pass the postgresql-physical target of this server to --target"
        )
    return None


def _log_report(report: PushReport) -> None:
    ahead = [p for p in report.ahead if p.event is not None]
    failed = [p for p in report.ahead if p.error is not None]
    log.info(
        "%s %s%s",
        report.asked.name,
        "was already archived" if report.asked.already else "archived",
        f"; {len(ahead)} more pushed ahead ({', '.join(p.name for p in ahead)})" if ahead else "",
        extra={"ctx_wal_failed_ahead": [p.name for p in failed]} if failed else None,
    )


# --------------------------------------------------------------------------- owed events


@contextlib.contextmanager
def _owed_lock(journal: WalJournal) -> Iterator[bool]:
    """Whether this process may send the target's owed events now (one sender at a time, never waiting)."""
    fd = os.open(journal.root / "owed.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def send_owed(journal: WalJournal, events: EventBridgeClient, bus: str, limit: int = OWED_PER_CALL) -> int:
    """Put the target's owed ``WAL Archived`` events on the bus, 10 per call; returns how many are still owed.
    A refusal leaves them owed (logged); it never fails the archive."""
    with _owed_lock(journal) as mine:
        if not mine:
            return len(journal.owed(limit))
        owed = journal.owed(limit)
        for start in range(0, len(owed), BATCH):
            batch = owed[start : start + BATCH]
            try:
                put_events(events, [_event(data) for _, data in batch], bus)
            except Exception as exc:  # noqa: BLE001 - a refusal, a bad owed entry, a network error: owed, never lost
                left = len(owed) - start
                log.warning(
                    "%d WAL Archived event(s) not delivered to the bus %s (%s): they stay owed in %s and are re-sent by"
                    " the next wal-push and when `backup-agent run` starts. Fix: run `backup-agent check` (credentials,"
                    " bus name, events:PutEvents)",
                    left,
                    bus,
                    exc,
                    journal.owed_dir,
                )
                return left
            for name, _ in batch:
                journal.paid(name)
        return 0


def _event(data: dict[str, Any]) -> WalArchived:
    return WalArchived.model_validate(data)


def resend_owed_wal(config: AgentConfig, events: EventBridgeClient) -> None:
    """At the agent's start: every target's owed ``WAL Archived`` events (journals that exist only)."""
    base = Path(config.state_dir) / "wal"
    if not base.is_dir():
        return
    for directory in sorted(base.iterdir()):
        if directory.name in config.targets and (directory / "owed").is_dir():
            try:
                left = send_owed(WalJournal(config.state_dir, directory.name), events, config.bus_name, limit=10_000)
            except (JournalError, OSError) as exc:
                log.warning("cannot re-send the owed WAL events of %s: %s", directory.name, exc)
                continue
            if left:
                log.warning("%d WAL Archived event(s) of %s still owed", left, directory.name)


# --------------------------------------------------------------------------- wal-fetch


def cmd_wal_fetch(args: argparse.Namespace) -> int:
    try:
        fetched = WalFetcher(Path(args.index), prefetch=max(0, min(args.prefetch, 64))).fetch(
            args.name, Path(args.dest)
        )
    except WalFetchError as exc:
        fix = (
            ""
            if "Fix:" in str(exc)
            else " Fix: run the restore again (it presigns fresh URLs); if the archive's object changed, the"
            " audit's ledger shows which"
        )
        log.error("wal-fetch %s refused: %s. Recovery is aborted rather than ended early.%s", args.name, exc, fix)
        return EXIT_ABORT_RECOVERY
    except OSError as exc:
        log.error("wal-fetch %s: cannot write %s: %s", args.name, args.dest, exc)
        return EXIT_ABORT_RECOVERY
    if not fetched:
        log.debug("wal-fetch %s: not in the index", args.name)
        return EXIT_NOT_IN_INDEX
    return EXIT_OK


COMMANDS: dict[str, Callable[[AgentConfig, argparse.Namespace], int]] = {"wal-push": cmd_wal_push}
WITHOUT_CONFIG: dict[str, Callable[[argparse.Namespace], int]] = {"wal-fetch": cmd_wal_fetch}
