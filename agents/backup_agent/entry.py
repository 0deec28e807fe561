"""The ``backup-agent`` program. ``wal-push`` and ``wal-fetch`` — started by PostgreSQL once per WAL
file — go to the lean ``backup_agent.wal.main``; every other command to the full ``backup_agent.cli``.
``python -m backup_agent.entry`` is the same program."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from backup_agent.cli_options import command_of

WAL_COMMANDS = ("wal-push", "wal-fetch")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if command_of(args) in WAL_COMMANDS:
        from backup_agent.wal.main import main as wal_main

        return wal_main(args)
    from backup_agent.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
