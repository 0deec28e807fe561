"""backupctl entry point: global flags, then one subcommand module per command.

To add a command (e.g. ``restore``), write ``backupctl/<name>.py`` with ``register(subparsers)``
that calls ``subparsers.add_parser(...)`` and ``set_defaults(command=<run(args, ctx) -> int>)``,
and append the module to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from botocore.exceptions import BotoCoreError, ClientError

from backup_contracts.fleet import FleetConfigError
from backupctl import backup_now, history, report, restore, silences, status
from backupctl.context import Context, UsageError, add_global_arguments

COMMANDS: list[ModuleType] = [status, history, backup_now, restore, report, silences]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backupctl",
        description="On-call command line for backup-pipeline: status, history, backup-now, restore, approve,"
        " restore-status, report, silence, unsilence, silences.",
    )
    add_global_arguments(parser)
    subparsers = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    ctx = Context.from_args(args)
    try:
        return int(args.command(args, ctx))
    except (UsageError, FleetConfigError) as exc:
        sys.stderr.write(f"backupctl: {exc}\n")
        return 2
    except (ClientError, BotoCoreError, RuntimeError) as exc:
        sys.stderr.write(f"backupctl: AWS call failed: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
