"""``backup-agent``: run the queue consumer, take a one-off backup, or check this host's setup.

Exit codes: 0 ok; 1 a backup failed (or, with --once, any job failed); 2 config error (file invalid,
target unknown, secret unresolvable); 3 ``check`` found problems; 4 AWS unreachable or refused;
5 a one-off backup is stored but its ``Backup Succeeded`` could not be put on the bus (it is kept in
the state file and re-sent at the agent's next start, see ``backup_agent.outbox``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from backup_agent import proc
from backup_agent.admission import JobRefusedError, admin_job, check_job
from backup_agent.aws import S3_UPLOAD_SETTINGS, client, client_config
from backup_agent.cli_options import agent_parser
from backup_agent.config import AgentConfig, ConfigError, load_config
from backup_agent.consumer import Consumer
from backup_agent.engines import build_engine
from backup_agent.engines.base import Engine
from backup_agent.engines.config import secret_refs
from backup_agent.engines.database import DatabaseEngine
from backup_agent.events import EventBridgeSink
from backup_agent.logs import setup_logging
from backup_agent.outbox import DELIVERY_ERRORS, RetryingSink, resend_unreported
from backup_agent.pipeline import BackupRun
from backup_agent.progress import ProgressBar
from backup_agent.restore import RestoreOutcome, RestoreRefusedError, RestoreRun
from backup_agent.secrets import SecretError, SecretResolver
from backup_agent.state import CompletedJobs, StateError
from backup_agent.version import VERSION as __version__
from backup_agent.wal import commands as wal_commands
from backup_contracts.events import BackupSucceeded
from backup_contracts.jobs import Job

if TYPE_CHECKING:
    from mypy_boto3_events.client import EventBridgeClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

log = logging.getLogger("backup_agent")

EXIT_OK = 0
EXIT_BACKUP_FAILED = 1
EXIT_CONFIG = 2
EXIT_CHECK_FAILED = 3
EXIT_AWS = 4
EXIT_UNREPORTED = 5


class Clients:
    """The agent's AWS clients, created once per process (never at import time)."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._cache: dict[str, Any] = {}

    def get(self, service: str) -> Any:
        """The client for ``service`` by name (S3 with the upload settings, SQS with a long-poll timeout)."""
        if service not in self._cache:
            if service == "s3":
                cfg = client_config(
                    max_attempts=self.config.upload.max_attempts,
                    pool=self.config.upload.parts_in_flight * self.config.concurrency + 4,
                    s3=S3_UPLOAD_SETTINGS,
                )
            elif service == "sqs":
                cfg = client_config(read_timeout=60)
            else:
                cfg = client_config()
            self._cache[service] = client(service, region=self.config.region, config=cfg)
        return self._cache[service]

    @property
    def s3(self) -> S3Client:
        return self.get("s3")

    @property
    def sqs(self) -> SQSClient:
        return self.get("sqs")

    @property
    def events(self) -> EventBridgeClient:
        return self.get("events")


def make_engine_factory(config: AgentConfig, resolver: SecretResolver) -> Callable[[str], Engine]:
    """Target name -> engine, through the engines package (secrets resolved by reference).

    Every variable a secret reference of this host names is hidden from every child process first, so
    a target's child never sees another target's password variable, resolved or not."""
    proc.hide_variables(ref.env for target in config.targets.values() for ref in secret_refs(target) if ref.env)

    def factory(target: str) -> Engine:
        if target not in config.targets:
            raise JobRefusedError(f"target {target!r} is not in this host's config")
        engine: Engine = build_engine(target, config.targets[target], resolver)
        return engine

    return factory


def _resolver(clients: Clients) -> SecretResolver:
    return SecretResolver(client_factory=clients.get)


# --------------------------------------------------------------------------- commands


def _restore_runner(
    config: AgentConfig, clients: Clients, events: EventBridgeSink, engine_factory: Callable[[str], Engine]
) -> Callable[[Job, threading.Event], RestoreOutcome]:
    """Restore/drill jobs run through ``backup_agent.restore.RestoreRun``."""

    def run(job: Job, cancel: threading.Event) -> RestoreOutcome:
        try:
            return RestoreRun(
                job, config, engine_factory=engine_factory, events=events, s3=clients.s3, cancel=cancel
            ).execute()
        except RestoreRefusedError as exc:
            raise JobRefusedError(str(exc)) from exc

    return run


def cmd_run(config: AgentConfig, args: argparse.Namespace) -> int:
    clients = Clients(config)
    events = EventBridgeSink(clients.events, config.bus_name)
    engine_factory = make_engine_factory(config, _resolver(clients))
    consumer = Consumer(
        config,
        sqs=clients.sqs,
        s3=clients.s3,
        events=events,
        engine_factory=engine_factory,
        completed=CompletedJobs(config.state_dir),
        restore_runner=_restore_runner(config, clients, events, engine_factory),
        drain=args.once,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        consumer.stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    resend_unreported(consumer.completed, events)
    wal_commands.resend_owed_wal(config, clients.events)
    log.info(
        "agent %s started (version %s, %d target(s), concurrency %d)",
        config.agent,
        __version__,
        len(config.targets),
        config.concurrency,
    )
    return consumer.run()


def cmd_backup(config: AgentConfig, args: argparse.Namespace) -> int:
    clients = Clients(config)
    job = admin_job(config, args.target, datetime.now(UTC))
    check_job(job, config)
    engine = make_engine_factory(config, _resolver(clients))(args.target)
    completed = CompletedJobs(config.state_dir)
    events = RetryingSink(EventBridgeSink(clients.events, config.bus_name))
    progress = ProgressBar(args.target) if sys.stderr.isatty() and not args.json_logs else None
    run = BackupRun(job, engine, config, s3=clients.s3, events=events, progress=progress, completed=completed)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        run.terminate()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        resend_unreported(completed, events)
        outcome = run.execute()
    except DELIVERY_ERRORS as exc:  # Started (or Failed) refused: nothing stored unreported
        log.error(
            "the event bus %s refused the run's events: %s. Fix: run `backup-agent check` (credentials, the"
            " bus name, events:PutEvents on it), then run the backup again",
            config.bus_name,
            exc,
        )
        return EXIT_AWS
    finally:
        if progress is not None:
            progress.close()
    sys.stdout.write(outcome.event.model_dump_json(indent=2, exclude_none=True) + "\n")
    if outcome.ok and not outcome.reported:
        return _unreported(config, outcome.succeeded, outcome.report_error, completed)
    return EXIT_OK if outcome.ok else EXIT_BACKUP_FAILED


def _unreported(config: AgentConfig, event: BackupSucceeded, error: str | None, completed: CompletedJobs) -> int:
    log.error(
        "backup stored and valid at s3://%s/%s (sha256 %s), but its Backup Succeeded event was not delivered"
        " to the bus %s: %s. The event is kept in %s and re-sent when this agent next starts (`backup-agent"
        " run`, or the next `backup-agent backup`); until then the pipeline does not count this backup."
        " Fix: run `backup-agent check` (credentials, bus name, events:PutEvents), then start the agent",
        event.bucket,
        event.key,
        event.sha256,
        config.bus_name,
        error,
        completed.path,
    )
    return EXIT_UNREPORTED


def cmd_check(config: AgentConfig, args: argparse.Namespace) -> int:
    clients = Clients(config)
    problems: list[str] = []
    out = sys.stdout

    def say(status: str, what: str) -> None:
        out.write(f"[{status:>4}] {what}\n")

    say("ok", f"config: agent {config.agent}, {len(config.targets)} target(s)")
    try:
        CompletedJobs(config.state_dir)
        say("ok", f"state_dir {config.state_dir} writable")
    except (StateError, OSError) as exc:
        problems.append(str(exc))
        say("FAIL", f"state_dir: {exc}")
    owed = CompletedJobs(config.state_dir).unreported() if not problems else []
    if owed:
        say("warn", f"{len(owed)} stored backup(s) not yet reported to the bus; re-sent when the agent starts")
    factory_resolver = _resolver(clients)
    factory = make_engine_factory(config, factory_resolver)
    for name in sorted(config.targets):
        try:
            for ref in secret_refs(config.targets[name]):
                factory_resolver.resolve(ref)
            engine = factory(name)
            found = engine.check()
            versions = engine.versions()
        except (SecretError, JobRefusedError) as exc:
            problems.append(f"{name}: {exc}")
            say("FAIL", f"target {name}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - report any engine failure as a problem of this target
            problems.append(f"{name}: {exc}")
            say("FAIL", f"target {name}: {exc}")
            continue
        for problem in found:
            problems.append(f"{name}: {problem}")
            say("FAIL", f"target {name}: {problem}")
        if not found and isinstance(engine, DatabaseEngine) and engine.absent:
            say(
                "warn",
                f"target {name} ({engine.name}): database {engine.config.database!r} does not exist yet; a clone"
                " or drill restore into it creates it (the server is reachable). If this target is backed up,"
                " create the database: its backups fail until it exists",
            )
        elif not found:
            say(
                "ok",
                f"target {name} ({engine.name}): tool {versions.tool_version or '?'}, "
                f"server {versions.server_version or '?'}",
            )
        for warning in versions.warnings:
            say("warn", f"target {name}: {warning}")
    aws_checks: list[tuple[str, Callable[[], Any], bool]] = [
        ("AWS credentials (sts get-caller-identity)", lambda: clients.get("sts").get_caller_identity(), True),
        (
            "job queue attributes",
            lambda: clients.sqs.get_queue_attributes(
                QueueUrl=config.queue_url, AttributeNames=["QueueArn", "VisibilityTimeout", "RedrivePolicy"]
            ),
            True,
        ),
        ("event bus", lambda: clients.events.describe_event_bus(Name=config.bus_name), False),
        ("KMS key", lambda: clients.get("kms").describe_key(KeyId=config.kms_key_id), False),
    ]
    aws_failed = False
    aws_problems = 0
    for label, call, required in aws_checks:
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - any failure is a finding of the check
            if required:
                aws_failed = True
                aws_problems += 1
                problems.append(f"{label}: {exc}")
                say("FAIL", f"{label}: {exc}")
            else:
                say("warn", f"{label} not verifiable with this role: {exc}")
            continue
        detail = ""
        if "Arn" in result:
            detail = f" ({result['Arn']})"
        elif "Attributes" in result:
            attrs = result["Attributes"]
            detail = (
                f" (visibility {attrs.get('VisibilityTimeout')} s, DLQ {'yes' if 'RedrivePolicy' in attrs else 'NO'})"
            )
        say("ok", f"{label}{detail}")
    say("info", "nothing was uploaded")
    if aws_failed and len(problems) == aws_problems:
        return EXIT_AWS
    return EXIT_CHECK_FAILED if problems else EXIT_OK


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = agent_parser()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="consume backup jobs from this agent's queue")
    run.add_argument(
        "--once",
        "--drain",
        dest="once",
        action="store_true",
        help="process what is on the queue, then exit when it is empty",
    )
    backup = sub.add_parser("backup", help="take one backup of TARGET now (trigger 'admin')")
    backup.add_argument("target", metavar="TARGET")
    sub.add_parser("check", help="verify config, connectivity, tool versions and AWS access; uploads nothing")
    wal_commands.add_parsers(sub)
    return parser


COMMANDS: dict[str, Callable[[AgentConfig, argparse.Namespace], int]] = {
    "run": cmd_run,
    "backup": cmd_backup,
    "check": cmd_check,
    **wal_commands.COMMANDS,
}


def _fixed_mmap_threshold(threshold: int = 1024 * 1024) -> None:
    """Make glibc serve every allocation >= 1 MiB (part buffers) with mmap and return it on free.

    By default glibc raises its mmap threshold dynamically after the first large free, after which
    part buffers (6 MiB and up) come from per-thread heaps that do not shrink: RSS then creeps up by
    tens of MiB. A fixed threshold keeps the agent's memory ~ parts in flight x part size. No-op
    elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _fixed_mmap_threshold()
    setup_logging(json_logs=args.json_logs, level=logging.DEBUG if args.verbose else logging.INFO)
    if args.command in wal_commands.WITHOUT_CONFIG:  # wal-fetch: PostgreSQL's restore_command, no config
        return wal_commands.WITHOUT_CONFIG[args.command](args)
    try:
        config = load_config(args.config)
        for stale in proc.remove_stale_secret_dirs():
            log.info("removed the private secret dir %s left by an agent that was killed", stale)
        return COMMANDS[args.command](config, args)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return EXIT_CONFIG
    except (JobRefusedError, SecretError, StateError) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
