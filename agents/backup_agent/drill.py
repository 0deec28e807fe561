"""Restore drills on the agent: after a drill restored and verified the latest good backup into its
scratch destination, the scratch copy is removed so the next drill starts from nothing.

The scratch destination is a target of its own in the fleet and the agent config (e.g.
``app-sqlite-drill``: another SQLite path, another PostgreSQL/MariaDB database name, another
``restore_dir``). A drill that finds its scratch destination holding data takes a safety backup of it
before replacing it (as a clone does) and then keeps it; cleanup only ever runs after this drill's own
restore succeeded into an empty destination.

Each engine removes its scratch copy itself (``Engine.drop_restored``): SQLite deletes the file and
its -wal/-shm/-journal; PostgreSQL drops the scratch database (``DROP DATABASE IF EXISTS ... WITH
(FORCE)``, through the maintenance database); MariaDB drops it (``DROP DATABASE IF EXISTS``); files
remove the ``restore_dir``; the command engine has no generic cleanup (its restore command owns the
destination) and says so.
"""

from __future__ import annotations

from backup_agent.engines.base import Engine


def cleanup(engine: Engine) -> str:
    """Remove the drill's scratch copy; returns what was done (raises when it could not)."""
    return engine.drop_restored()
