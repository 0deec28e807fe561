"""The alerts of a PITR target's WAL archive (registered in ``alerts.BUILDERS``; docs/oncall.md).

- ``WAL ARCHIVING LAGS`` (``wal-lag``): the server has completed WAL the archive does not have, and the
  newest archived file is older than the target's ``wal_rpo`` (or no WAL was ever archived since its first
  good base backup): a disaster now loses that WAL, and restores reach no further than the archive;
- ``WAL ARCHIVE GAP`` (``wal-gap``): a segment is missing while later ones are archived, for longer than
  ``wal_rpo``: point-in-time restores from the base backups before it cannot replay past it.

The facts come from the incident's details (``watchdog/wal.py``), as ``Situation.extra``. The building
blocks (``Alert``, the subject line, the facts) are ``backup_functions.alerts``'s, imported when a builder
runs (``alerts`` imports this module to register the builders).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backup_contracts.formatting import format_age, format_time
from backup_functions.alert_kinds import WAL_GAP, WAL_LAG

if TYPE_CHECKING:
    from backup_functions.alerts import Alert, Phase, Situation

DOCS = {WAL_LAG: "docs/oncall.md#wal-archiving-lags", WAL_GAP: "docs/oncall.md#wal-archive-gap"}


def _at(s: Situation, name: str) -> datetime | None:
    value = s.extra.get(name)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _when(s: Situation, moment: datetime | None) -> str:
    return f"{format_time(moment)} ({format_age(s.now - moment)} ago)" if moment else "-"


def _steps(s: Situation, kind: str, phase: Phase) -> list[str]:
    if phase == "resolved":
        return ["backupctl status"]
    host = f"on host {s.agent}"
    if kind == WAL_LAG:
        return [
            "backupctl status (the WAL column)",
            f"{host}: psql -c 'table pg_stat_archiver' (failed_count, last_failed_wal, last_failed_time)",
            f"{host}: journalctl -u postgresql --since -1h | grep wal-push (why backup-agent wal-push fails:"
            " credentials, network, the bucket or key)",
            DOCS[WAL_LAG],
        ]
    missing = s.extra.get("first_missing", "the missing segment")
    return [
        f"{host}: if pg_wal still has {missing}, archive it again as the postgres user: backup-agent wal-push"
        f" <data_directory>/pg_wal/{missing}",
        "otherwise fix archiving, then take a new base backup (it restarts the archive after the gap):"
        f" backupctl backup-now {s.target} --reason 'new base backup after a WAL gap'",
        DOCS[WAL_GAP],
    ]


def _lag_lines(s: Situation) -> tuple[str, list[str]]:
    rpo = timedelta(seconds=int(s.extra["wal_rpo_s"])) if s.extra.get("wal_rpo_s") else None
    newest = _at(s, "newest_archived_at")
    lines = [f"WAL RPO:     {format_age(rpo)}"] if rpo else []
    if s.extra.get("newest_file"):
        lines.append(f"Newest WAL:  {s.extra['newest_file']} archived {_when(s, newest)}")
        what = f"archived WAL is {format_age(s.now - newest)} old" if newest else "archived WAL is late"
    else:
        lines.append(
            f"Newest WAL:  none archived since the first good base backup ({_when(s, _at(s, 'expected_since'))})"
        )
        what = "no WAL archived since the base backup"
    if s.extra.get("contiguous_through"):
        lines.append(f"Contiguous:  through {s.extra['contiguous_through']}")
    if s.extra.get("server_current_file"):
        checked = _when(s, _at(s, "server_checked_at"))
        lines.append(f"Server:      writing {s.extra['server_current_file']} (checked {checked})")
    if s.extra.get("server_last_failed_at"):
        lines.append(
            f"Failing:     the server's archive_command failed on {s.extra.get('server_last_failed_file', '?')} at"
            f" {_when(s, _at(s, 'server_last_failed_at'))}, after its last success"
            f" ({_when(s, _at(s, 'server_last_archived_at'))})"
        )
    lines.append("Means:       a disaster now loses the WAL not archived; restores reach no further than the archive")
    return what, lines


def _gap_lines(s: Situation) -> tuple[str, list[str]]:
    missing = s.extra.get("first_missing", "?")
    lines = [
        f"Missing:     {missing} (found missing when {s.extra.get('later_file', 'a later file')} arrived)",
        f"Contiguous:  through {s.extra.get('contiguous_through') or 'nothing yet'}",
        f"Means:       point-in-time restores cannot replay past {missing}: from the base backups before it, no time"
        " after it is reachable, until a new base backup starts after it",
    ]
    return f"segment {missing} missing", lines


def _build(s: Situation, kind: str, phase: Phase) -> Alert:
    from backup_functions.alerts import Alert, _subject, _who, alert_facts  # imported here: see the docstring

    headline = "WAL ARCHIVING LAGS" if kind == WAL_LAG else "WAL ARCHIVE GAP"
    what, lines = _lag_lines(s) if kind == WAL_LAG else _gap_lines(s)
    steps = _steps(s, kind, phase)
    again = "WAL archiving caught up" if kind == WAL_LAG else "WAL archive contiguous again"
    if phase == "resolved":
        title = f"RESOLVED after {format_age(s.now - s.since)}: {again} ({_who(s)})"
        lines = [f"Resolution:  {s.extra['resolution']}"] if s.extra.get("resolution") else []
    elif phase == "reminder":
        title = f"Still open (reminder {s.notify_count}): {headline.lower()} - {what} ({_who(s)})"
    else:
        title = f"{headline}: {what} ({_who(s)})"
    since = (_at(s, "gap_since") if kind == WAL_GAP else None) or s.since  # the gap itself, not its grace's end
    body = [title, "", f"Since:       {_when(s, since)}", *lines, "", "Next step:", *[f"    {x}" for x in steps]]
    body.extend(["", f"Alert time: {format_time(s.now)} - pipeline {s.pipeline}"])
    return Alert(
        kind=kind,
        phase=phase,
        subject=_subject(s, phase, headline, again if phase == "resolved" else what),
        body="\n".join(body) + "\n",
        facts=alert_facts(s, kind, phase, what, steps),
    )


def wal_lags(s: Situation, phase: Phase = "open") -> Alert:
    return _build(s, WAL_LAG, phase)


def wal_gap(s: Situation, phase: Phase = "open") -> Alert:
    return _build(s, WAL_GAP, phase)


WAL_BUILDERS: dict[str, Callable[[Any, Any], Alert]] = {WAL_LAG: wal_lags, WAL_GAP: wal_gap}
