"""The watchdog and a PITR target's WAL archive: a gap in the archive and archiving that lags its server each
open one incident (once past wal_rpo), remind while they last, and recover with a message when they clear."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from wd_env import T0, Env

from backup_contracts.fleet import Fleet, parse_fleet
from backup_contracts.wal import Segment, WalArchived, WalServerStatus

pytestmark = pytest.mark.integration

M = timedelta(minutes=1)
H = timedelta(hours=1)
WAL_RPO = 5 * M
TARGET = "orders-pitr"


def pitr_fleet() -> Fleet:
    return parse_fleet(
        {
            "version": 1,
            "pipeline": {"name": "wd", "reminder_interval_minutes": 60, "heartbeat_timeout_minutes": 30},
            "retention_classes": {"standard": {"daily_days": 7}},
            "agents": [
                {
                    "name": "host-0",
                    "targets": [
                        {"name": TARGET, "engine": "postgresql-physical", "schedule": "rate(1 day)", "rpo": "26h"}
                    ],
                }
            ],
        }
    )


@pytest.fixture
def wal_env(env: Env) -> Env:
    env.fleet = pitr_fleet()
    env.good_backup(TARGET, T0 - H)
    return env


def seg(number: int) -> str:
    return Segment(1, number).name


def archive(env: Env, *numbers: int, at: datetime) -> None:
    for number in numbers:
        event = WalArchived(
            agent="host-0",
            target=TARGET,
            file=seg(number),
            bucket="b",
            key=f"agents/host-0/{TARGET}/wal/{seg(number)}.zst",
            sha256="0" * 64,
            bytes_in=16 * 1024 * 1024,
            bytes_stored=1000,
            compression="zst",
            archived_at=at,
        )
        env.ledger.wal.record_file(event, recorded_at=at, wal_rpo=WAL_RPO, expires_at=at + 30 * 24 * H)


def status(env: Env, current: int, at: datetime, **fields: object) -> None:
    server = WalServerStatus.model_validate(
        {"target": TARGET, "current_file": seg(current), "checked_at": at, **fields}
    )
    env.ledger.wal.record_server_status("host-0", server, wal_rpo=WAL_RPO)


def test_a_gap_in_the_wal_archive_is_detected_and_alerted(wal_env: Env) -> None:
    env = wal_env
    archive(env, 1, 2, at=T0)
    archive(env, 4, 5, at=T0 + M)  # segment 3 never arrived

    env.tick(T0 + 5 * M)
    assert env.inbox() == []  # within the grace (wal_rpo): it may still arrive

    env.tick(T0 + 7 * M)
    (alert,) = env.inbox()
    assert (alert.kind, alert.phase) == ("wal-gap", "open")
    assert alert.attributes["severity"] == "critical"
    assert alert.subject == f"[wd] WAL ARCHIVE GAP: {TARGET} on host-0 - segment {seg(3)} missing"
    assert "Since:       2026-11-20 00:01:00 UTC (6m ago)" in alert.body
    assert f"Missing:     {seg(3)} (found missing when {seg(4)} arrived)" in alert.body
    assert f"cannot replay past {seg(3)}" in alert.body
    assert f"backup-agent wal-push <data_directory>/pg_wal/{seg(3)}" in alert.body
    assert f"backupctl backup-now {TARGET}" in alert.body
    assert alert.facts["first_missing"] == seg(3)

    env.tick(T0 + 30 * M)
    assert env.inbox() == []  # one alert per incident
    env.tick(T0 + 7 * M + H)
    assert [(a.kind, a.phase) for a in env.inbox()] == [("wal-gap", "reminder")]

    archive(env, 3, at=T0 + 2 * H)
    env.tick(T0 + 2 * H + M)
    (resolved,) = env.inbox()
    assert (resolved.kind, resolved.phase) == ("wal-gap", "resolved")
    assert "RESOLVED" in resolved.subject
    assert "WAL archive contiguous again" in resolved.subject
    assert env.incidents() == []


def test_a_new_base_backup_after_the_gap_clears_it(wal_env: Env) -> None:
    env = wal_env
    archive(env, 1, 2, 4, 5, 6, at=T0)
    env.tick(T0 + 6 * M)
    assert [a.kind for a in env.inbox()] == ["wal-gap"]

    env.ledger.wal.base_backup(TARGET, "host-0", start_file=seg(5), good_at=T0 + H, wal_rpo=WAL_RPO)
    env.tick(T0 + H + M)

    assert [(a.kind, a.phase) for a in env.inbox()] == [("wal-gap", "resolved")]


def test_wal_archiving_that_lags_its_server_alerts_once_reminds_and_recovers(wal_env: Env) -> None:
    env = wal_env
    archive(env, 1, 2, at=T0)
    status(env, 3, T0 + M)  # writing the next segment: keeping up
    env.tick(T0 + 10 * M)
    assert env.inbox() == []

    status(
        env,
        6,
        T0 + 11 * M,
        last_archived_file=seg(2),
        last_archived_at=T0,
        last_failed_file=seg(3),
        last_failed_at=T0 + 10 * M,
    )
    env.tick(T0 + 15 * M)
    assert env.inbox() == []  # behind since 11m: within wal_rpo

    env.tick(T0 + 17 * M)
    (alert,) = env.inbox()
    assert (alert.kind, alert.phase) == ("wal-lag", "open")
    assert alert.subject == f"[wd] WAL ARCHIVING LAGS: {TARGET} on host-0 - archived WAL is 17m old"
    assert f"Newest WAL:  {seg(2)} archived 2026-11-20 00:00:00 UTC (17m ago)" in alert.body
    assert f"Server:      writing {seg(6)}" in alert.body
    assert f"archive_command failed on {seg(3)}" in alert.body
    assert "pg_stat_archiver" in alert.body

    env.tick(T0 + 17 * M + H)
    assert [(a.kind, a.phase) for a in env.inbox()] == [("wal-lag", "reminder")]

    archive(env, 3, 4, 5, at=T0 + 2 * H)
    env.tick(T0 + 2 * H + M)
    (resolved,) = env.inbox()
    assert (resolved.kind, resolved.phase) == ("wal-lag", "resolved")
    assert "WAL archiving caught up" in resolved.subject


def test_a_base_backup_followed_by_no_wal_at_all_is_a_lag(wal_env: Env) -> None:
    env = wal_env
    env.ledger.wal.base_backup(TARGET, "host-0", start_file=seg(7), good_at=T0, wal_rpo=WAL_RPO)

    env.tick(T0 + 4 * M)
    assert env.inbox() == []
    env.tick(T0 + 6 * M)

    (alert,) = env.inbox()
    assert alert.kind == "wal-lag"
    assert "no WAL archived since the base backup" in alert.subject
    archive(env, 7, at=T0 + 10 * M)
    env.tick(T0 + 11 * M)
    assert [(a.kind, a.phase) for a in env.inbox()] == [("wal-lag", "resolved")]
