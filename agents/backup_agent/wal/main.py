"""``backup-agent wal-push`` / ``wal-fetch`` without the rest of the agent: PostgreSQL starts one process
per WAL file (``archive_command``, ``restore_command``), so these load only what they use — not the
queue consumer, the engines or the restore executor (``backup_agent.entry`` routes here)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from backup_agent.cli_options import agent_parser
from backup_agent.config import ConfigError, load_config
from backup_agent.logs import setup_logging
from backup_agent.wal import commands

log = logging.getLogger("backup_agent")


def main(argv: Sequence[str]) -> int:
    parser = agent_parser()
    commands.add_parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    setup_logging(json_logs=args.json_logs, level=logging.DEBUG if args.verbose else logging.INFO)
    if args.command in commands.WITHOUT_CONFIG:
        return commands.WITHOUT_CONFIG[args.command](args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return commands.EXIT_CONFIG
    return commands.COMMANDS[args.command](config, args)
