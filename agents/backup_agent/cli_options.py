"""The options every ``backup-agent`` command takes, defined once for the full CLI (``backup_agent.cli``)
and for the lean WAL commands (``backup_agent.wal.main``)."""

from __future__ import annotations

import argparse

from backup_agent.config import CONFIG_ENV, DEFAULT_CONFIG_PATH
from backup_agent.version import VERSION

DESCRIPTION = "backup-pipeline host agent: streams database dumps into KMS-encrypted S3."
EPILOG = (
    "Exit codes: 0 ok, 1 backup failed, 2 config error, 3 check found problems, 4 AWS unreachable,"
    " 5 backup stored but not yet reported (re-sent at the next start)."
)


def agent_parser() -> argparse.ArgumentParser:
    """``backup-agent`` with its global options; the caller adds the subcommands."""
    parser = argparse.ArgumentParser(prog="backup-agent", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"backup-agent {VERSION}")
    parser.add_argument(
        "--config", metavar="PATH", help=f"agent config file (default: ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})"
    )
    logs = parser.add_mutually_exclusive_group()
    logs.add_argument("--json-logs", action="store_true", default=None, help="JSON log lines (default when not a TTY)")
    logs.add_argument("--text-logs", action="store_false", dest="json_logs", help="human-readable log lines")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def command_of(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (the first word that is neither an option nor --config's value)."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None
