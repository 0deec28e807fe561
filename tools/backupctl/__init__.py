"""backupctl: the on-call engineer's command line for backup-pipeline (status, history, backup-now).

Subcommands live in their own modules and register themselves with ``cli.COMMANDS``; add one by
writing a module with ``register(subparsers)`` and listing it there.
"""
