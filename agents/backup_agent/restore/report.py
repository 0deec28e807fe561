"""Stage 6 of a restore: the engine's report checked, compared with the backup's manifest, made small.

``verify_report`` decides whether a restore is good; ``compact_verification`` and ``jsonable`` turn
what it found into the ``verification`` of the ``Restore Succeeded`` event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backup_contracts.jobs import WalReplay


def verify_report(
    verification: dict[str, object], expected: dict[str, Any], *, mode: str, wal: WalReplay | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Check an engine's restore report and compare it with the manifest's facts.

    Returns (checks passed, by name → value; problems, in words). Rules: an integrity check, where
    the engine reports one, must say ok; no table of the archive may be missing; every table the
    archive had must be there (tables restored minus tables that were not in the archive ≥ tables
    in the manifest); byte counts (SQLite: the restored file) must equal the manifest's; where the
    archive counts its rows (PostgreSQL), every restored table must hold its rows, and the archive
    the rows the backup recorded; a database this restore created must have the source's properties.
    A point-in-time restore (``wal``) must report where recovery stopped, not after its target time,
    on the system of its base backup (``_check_recovery``).
    """
    checks: dict[str, Any] = {}
    problems: list[str] = []
    integrity = verification.get("integrity_check")
    if integrity is not None:
        if integrity != "ok":
            problems.append(f"integrity check: {integrity}")
        else:
            checks["integrity_check"] = "ok"
    missing = verification.get("missing_tables")
    if isinstance(missing, list):
        if missing:
            problems.append(f"tables of the archive missing after the restore: {', '.join(map(str, missing[:10]))}")
        else:
            checks["missing_tables"] = 0
    restored = verification.get("tables")
    extra = verification.get("extra_tables")
    extra_count = len(extra) if isinstance(extra, list) else 0
    archived = expected.get("tables", expected.get("create_tables"))
    if archived is None:
        archived = verification.get("archive_tables")
    if isinstance(restored, int) and isinstance(archived, int):
        if restored - extra_count < archived:
            problems.append(f"{restored - extra_count} tables restored, the backup had {archived}")
        else:
            checks["tables"] = f"{restored - extra_count} restored of {archived} in the backup"
    if isinstance(expected.get("bytes"), int) and isinstance(verification.get("bytes"), int):
        if verification["bytes"] != expected["bytes"]:
            problems.append(f"{verification['bytes']} bytes restored, the backup had {expected['bytes']}")
        else:
            checks["bytes"] = expected["bytes"]
    if isinstance(verification.get("total_rows"), int):
        checks["total_rows"] = verification["total_rows"]
    _check_rows(verification, expected, checks, problems)
    _check_database_properties(verification, checks, problems)
    if wal is not None:
        _check_recovery(verification, expected, wal, checks, problems)
    checks["mode"] = mode
    return checks, problems


def _check_rows(
    verification: dict[str, object], expected: dict[str, Any], checks: dict[str, Any], problems: list[str]
) -> None:
    """Rows per table against the archive's own counts, and the archive's against the manifest's."""
    differ = verification.get("rows_differ")
    if not isinstance(differ, list):
        return
    before = len(problems)
    if differ:
        problems.append(f"rows differ from the backup: {'; '.join(map(str, differ[:10]))}")
    archived_total = verification.get("archive_rows_total")
    recorded_total = expected.get("rows_total")
    if isinstance(recorded_total, int) and recorded_total != archived_total:
        problems.append(f"the backup holds {archived_total} rows, its manifest recorded {recorded_total}")
    restored = verification.get("rows")
    recorded = expected.get("rows")
    if isinstance(recorded, dict) and isinstance(restored, dict):
        for name, count in sorted(recorded.items()):
            if name in restored and restored[name] != count:
                problems.append(f"{name}: {restored[name]} rows restored, the manifest recorded {count}")
    if len(problems) == before:
        checks["rows"] = (
            f"{archived_total} rows in {len(restored) if isinstance(restored, dict) else '?'} tables, as in the backup"
        )


def _check_database_properties(verification: dict[str, object], checks: dict[str, Any], problems: list[str]) -> None:
    differ = verification.get("database_properties_differ")
    if isinstance(differ, list) and differ:
        if verification.get("database_created"):
            problems.append(f"the restored database is not like the source: {'; '.join(map(str, differ))}")
        else:
            checks["database_properties"] = f"kept the existing destination's: {'; '.join(map(str, differ))}"
    elif isinstance(verification.get("database_properties"), str):
        checks["database_properties"] = verification["database_properties"]


def _check_recovery(
    verification: dict[str, object],
    expected: dict[str, Any],
    wal: WalReplay,
    checks: dict[str, Any],
    problems: list[str],
) -> None:
    """``reached_at`` (the last replayed commit) at or before the target time; the restored cluster's
    ``system_identifier`` the base backup's (a restore of another cluster's files would differ)."""
    reached = _moment(verification.get("reached_at"))
    if wal.recovery_target_time is not None:
        if "reached_at" not in verification:
            problems.append("the restore did not report the time recovery reached (reached_at)")
        elif reached is None:  # reported as none: no commit was replayed after the base backup's end
            checks["recovery_target_time"] = wal.recovery_target_time.isoformat()
            checks["reached_at"] = "no transaction replayed after the base backup"
        elif reached > wal.recovery_target_time:
            problems.append(
                f"recovery reached {reached.isoformat()}, after the target {wal.recovery_target_time.isoformat()}"
            )
        else:
            checks["recovery_target_time"] = wal.recovery_target_time.isoformat()
    if reached is not None:
        checks["reached_at"] = reached.isoformat()
    recorded, restored = expected.get("system_identifier"), verification.get("system_identifier")
    if recorded is not None and str(restored) != str(recorded):
        problems.append(f"the restored cluster's system identifier is {restored}, the base backup's {recorded}")
    elif recorded is not None:
        checks["system_identifier"] = str(recorded)


def _moment(value: object) -> datetime | None:
    """A reported time (a datetime or ISO 8601 text; without a zone it is UTC), or None."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


ROWS_IN_EVENT_MAX = 50


def compact_verification(verification: dict[str, Any]) -> dict[str, Any]:
    """Keep the event (EventBridge: 256 KiB) and the ledger item (DynamoDB: 400 KB) small whatever the
    number of tables: per-table row counts beyond the 50 largest are summarised, long lists cut."""
    result = dict(verification)
    rows = result.get("rows")
    if isinstance(rows, dict) and len(rows) > ROWS_IN_EVENT_MAX:
        largest = sorted(rows.items(), key=lambda item: (-int(item[1]), str(item[0])))[:ROWS_IN_EVENT_MAX]
        result["rows"] = dict(largest)
        result["rows_note"] = f"{ROWS_IN_EVENT_MAX} largest of {len(rows)} tables shown"
    for name, value in list(result.items()):
        if isinstance(value, list) and len(value) > ROWS_IN_EVENT_MAX:
            result[name] = [*value[:ROWS_IN_EVENT_MAX], f"... {len(value) - ROWS_IN_EVENT_MAX} more"]
    return result


def jsonable(value: Any) -> Any:
    """``value`` with every key a string and everything that is not JSON as its ``str``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
