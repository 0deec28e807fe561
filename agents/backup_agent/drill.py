"""Restore drills on the agent: after a drill restored and verified the latest good backup into its
scratch destination, the scratch copy is removed so the next drill starts from nothing.

The scratch destination is a target of its own in the fleet and the agent config (e.g.
``app-sqlite-drill``: another SQLite path, another PostgreSQL/MariaDB database name, another
``restore_dir``). Clone and drill restores refuse a non-empty destination, so a drill can never
overwrite real data; cleanup only ever runs after this drill's own restore succeeded.

Per engine: SQLite deletes the file and its -wal/-shm/-journal; PostgreSQL and MariaDB drop the
scratch database; files remove the ``restore_dir``; the command engine has no generic cleanup (its
restore command owns the destination) and says so. An engine may provide ``drop_restored()`` itself,
which then takes precedence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from backup_agent.engines.base import Engine

_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def cleanup(engine: Engine) -> str:
    """Remove the drill's scratch copy; returns what was done (raises when it could not)."""
    hook = getattr(engine, "drop_restored", None)
    if callable(hook):
        return str(hook() or "dropped by the engine")
    config: Any = getattr(engine, "config", None)
    kind = getattr(engine, "name", "")
    if kind == "sqlite" and config is not None:
        path = Path(config.path)
        for candidate in (path, *(Path(f"{path}{suffix}") for suffix in _SQLITE_SIDE_FILES)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(candidate)
        return f"removed {path}"
    if kind == "postgresql" and config is not None:
        engine._psql(  # type: ignore[attr-defined]
            'DROP DATABASE IF EXISTS :"dbname" WITH (FORCE);',
            database=config.maintenance_database,
            variables={"dbname": config.database},
        )
        return f"dropped database {config.database}"
    if kind == "mariadb" and config is not None:
        from backup_agent.engines.mariadb import sql_ident

        engine._query(f"DROP DATABASE IF EXISTS {sql_ident(config.database)};")  # type: ignore[attr-defined]
        return f"dropped database {config.database}"
    if kind == "files" and config is not None and config.restore_dir is not None:
        if Path(config.restore_dir).exists():
            shutil.rmtree(config.restore_dir)
        return f"removed {config.restore_dir}"
    return f"no cleanup for engine {kind!r}: clear the scratch destination with its own tools"
