"""Where each PITR server's WAL stands, for the agent's heartbeat (``AgentHeartbeat.wal``).

For every ``postgresql-physical`` target this host backs up (a source: no ``data_directory``), one query
through the engine's own connection (``PostgresPhysicalEngine.query``) (its conninfo and password by reference):
``pg_walfile_name(pg_current_wal_lsn())`` — the segment the server writes now — and ``pg_stat_archiver``'s
last archived and last failed file and times. The audit records them on the target's archive summary, and
the watchdog compares them with the archive: completed WAL that is not archived, or a failing
archive_command, shows before the WAL RPO passes.

A server that cannot be asked (down, a standby, refusing the role) is left out of this heartbeat and
logged; the heartbeat itself always goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from backup_agent.config import AgentConfig
from backup_agent.engines.pg_physical_config import PostgresPhysicalConfig
from backup_agent.engines.postgresql_physical import PostgresPhysicalEngine
from backup_contracts.wal import WalServerStatus

log = logging.getLogger(__name__)

STATUS_SQL = """
SELECT pg_walfile_name(pg_current_wal_lsn()),
       coalesce(last_archived_wal, ''),
       coalesce(to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), ''),
       coalesce(last_failed_wal, ''),
       coalesce(to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), '')
  FROM pg_stat_archiver;
"""


def pitr_sources(config: AgentConfig) -> list[str]:
    """The PITR targets whose server this host archives (restore destinations have a data_directory)."""
    return sorted(
        name
        for name, target in config.targets.items()
        if isinstance(target, PostgresPhysicalConfig) and target.data_directory is None
    )


def parse_status(target: str, row: str, checked_at: datetime) -> WalServerStatus:
    """One tab-separated row of ``STATUS_SQL`` as a ``WalServerStatus`` (empty columns: None)."""
    current, archived, archived_at, failed, failed_at = (row.strip("\n").split("\t") + [""] * 5)[:5]
    return WalServerStatus(
        target=target,
        current_file=current,
        last_archived_file=archived or None,
        last_archived_at=datetime.fromisoformat(archived_at) if archived_at else None,
        last_failed_file=failed or None,
        last_failed_at=datetime.fromisoformat(failed_at) if failed_at else None,
        checked_at=checked_at,
    )


def wal_statuses(
    config: AgentConfig,
    engine_factory: Callable[[str], Any],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[WalServerStatus] | None:
    """Each PITR source's status (None when this host has none: the heartbeat then carries no ``wal``)."""
    targets = pitr_sources(config)
    if not targets:
        return None
    found: list[WalServerStatus] = []
    for target in targets:
        try:
            engine = engine_factory(target)
            if not isinstance(engine, PostgresPhysicalEngine):
                continue
            found.append(parse_status(target, engine.query(STATUS_SQL), clock()))
        except (ValidationError, ValueError) as exc:
            log.warning("the WAL status of %s is not readable (left out of the heartbeat): %s", target, exc)
        except Exception as exc:  # noqa: BLE001 - a server that cannot be asked never stops the heartbeat
            log.warning("cannot ask %s where its WAL stands (left out of the heartbeat): %s", target, exc)
    return found
