"""Retention that cannot lose the last backups, against moto: every verified backup is Object-Locked for its
GFS tier's days (never shortened), and each target's newest keep_last good backups are tagged keep — a
value no lifecycle rule matches — with their run records pinned, whatever order events arrive in, under
redelivery, interrupted releases and a concurrent audit. (What lifecycle then does: test_keep_last_lifecycle.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backup_contracts.fleet import Fleet, parse_fleet
from backup_functions.audit import logic as audit_logic
from backup_functions.ledger.runs import PINNED_UNTIL
from backup_functions.ports import Retention
from local_pipeline.clock import SimulatedClock

from .conftest import PIPELINE, Aws, daily_targets, make_fleet
from .keep_world import (
    Backup,
    audit,
    expires_at,
    failed_run,
    good_run,
    lock_of,
    make_auditor,
    run_record,
    tag_of,
    target_state,
)

pytestmark = pytest.mark.integration

MONDAY = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)  # the first backup of November (monthly) and of ISO week 47
TTL = timedelta(days=400)  # the fleet's ledger_ttl_days


def day(n: int) -> datetime:
    return MONDAY + timedelta(days=n)


def fleet_keeping(keep_last: int, **object_lock: Any) -> Fleet:
    return parse_fleet(
        {
            "version": 1,
            "pipeline": {"name": PIPELINE, "object_lock": object_lock or {"enabled": True}},
            "retention_classes": {
                "standard": {"daily_days": 14, "weekly_days": 62, "monthly_days": 400, "keep_last": keep_last}
            },
            "agents": [{"name": "db-1", "targets": daily_targets("orders", 1)}],
        }
    )


def deliver(auditor: audit_logic.Auditor, clock: SimulatedClock, *backups: Backup) -> None:
    """Each run's Started and Succeeded, with the audit's clock just after the run ended."""
    for backup in backups:
        if clock.now() < backup.finished_at + timedelta(minutes=1):
            clock.set(backup.finished_at + timedelta(minutes=1))
        audit(auditor, backup.started, backup.ended)


def kept(aws: Aws, target: str = "orders-0") -> list[str]:
    return [member.run_id for member in target_state(aws, target).keep]


# --- Object Lock ----------------------------------------------------------------------------------------------
def test_each_verified_backup_and_its_manifest_is_locked_for_its_tiers_days(aws: Aws, auditor, clock) -> None:
    monthly, daily, weekly = good_run(aws, day(0)), good_run(aws, day(1)), good_run(aws, day(7))

    deliver(auditor, clock, monthly, daily, weekly)

    for backup, days in ((monthly, 400), (daily, 14), (weekly, 62)):
        until = backup.started_at + timedelta(days=days)
        assert lock_of(aws, backup.key, backup.version_id) == ("GOVERNANCE", until)
        assert lock_of(aws, backup.manifest) == ("GOVERNANCE", until)
        run = aws.ledger.runs.get(backup.target, backup.started_at, backup.run_id)
        assert run is not None
        assert (run.lock_mode, run.locked_until) == ("GOVERNANCE", until)


def test_compliance_mode_locks_in_compliance(aws: Aws, clock: SimulatedClock) -> None:
    auditor = make_auditor(aws, fleet_keeping(3, mode="compliance"), clock)
    backup = good_run(aws, day(0))

    deliver(auditor, clock, backup)

    assert lock_of(aws, backup.key, backup.version_id) == ("COMPLIANCE", day(0) + timedelta(days=400))


def test_a_longer_retention_is_never_shortened(aws: Aws, auditor, clock) -> None:
    backup = good_run(aws, day(1))  # daily: 14 days
    longer = day(1) + timedelta(days=1000)
    auditor.objects.set_retention(aws.bucket, backup.key, backup.version_id, Retention("GOVERNANCE", longer))
    calls = aws.calls["s3.PutObjectRetention"]

    deliver(auditor, clock, good_run(aws, day(0)), backup)

    assert lock_of(aws, backup.key, backup.version_id) == ("GOVERNANCE", longer)
    assert lock_of(aws, backup.manifest) == ("GOVERNANCE", day(1) + timedelta(days=14))
    # the earlier monthly run: object + manifest; this one: its manifest only, never the longer-locked object
    assert aws.calls["s3.PutObjectRetention"] - calls == 3


def test_redelivery_locks_nothing_twice(aws: Aws, auditor, clock) -> None:
    backup = good_run(aws, day(0))
    deliver(auditor, clock, backup)
    calls = aws.calls["s3.PutObjectRetention"]

    audit(auditor, backup.ended, backup.started, backup.ended)

    assert aws.calls["s3.PutObjectRetention"] == calls


def test_a_backup_whose_retention_has_already_ended_still_counts_but_is_not_locked(aws: Aws, auditor, clock) -> None:
    late = good_run(aws, day(1))  # daily: its 14 days ended before the audit saw it
    clock.set(day(20))
    deliver(auditor, clock, good_run(aws, day(0)), late)

    assert aws.ledger.runs.get("orders-0", late.started_at, late.run_id).good  # type: ignore[union-attr]
    assert lock_of(aws, late.key, late.version_id) == (None, None)


def test_without_object_lock_no_retention_is_set(aws: Aws, clock: SimulatedClock) -> None:
    auditor = make_auditor(aws, fleet_keeping(3, enabled=False), clock)

    deliver(auditor, clock, good_run(aws, day(0)))

    assert aws.calls["s3.PutObjectRetention"] == 0


# --- the keep-set ---------------------------------------------------------------------------------------------
def test_the_newest_good_backups_are_kept_and_the_oldest_gets_its_tier_back(aws: Aws, auditor, clock) -> None:
    backups = [good_run(aws, day(n)) for n in range(4)]

    deliver(auditor, clock, *backups)

    oldest, *newest = backups
    assert kept(aws) == [b.run_id for b in reversed(newest)]
    assert target_state(aws).keep_released == {}  # the release was settled
    for backup in newest:
        assert tag_of(aws, backup.key, backup.version_id) == tag_of(aws, backup.manifest) == "keep"
        assert expires_at(aws, backup) == int(PINNED_UNTIL.timestamp())  # a restore finds it at any age
    assert tag_of(aws, oldest.key, oldest.version_id) == tag_of(aws, oldest.manifest) == "standard-monthly"
    assert expires_at(aws, oldest) == int((oldest.started_at + TTL).timestamp())


@pytest.mark.parametrize("order", [(3, 0, 2, 1), (0, 3, 1, 2), (3, 2, 1, 0)])
def test_the_order_backups_arrive_in_changes_nothing(aws: Aws, auditor, clock, order: tuple[int, ...]) -> None:
    backups = [good_run(aws, day(n)) for n in range(4)]

    deliver(auditor, clock, *(backups[n] for n in order))

    assert kept(aws) == [backups[n].run_id for n in (3, 2, 1)]
    # the oldest has its tier's tag (the GFS period goes to the first good backup *recorded* in it)
    assert tag_of(aws, backups[0].key, backups[0].version_id) == run_record(aws, backups[0]).retention_tag
    assert [tag_of(aws, b.key, b.version_id) for b in backups[1:]] == ["keep", "keep", "keep"]
    assert target_state(aws).keep_released == {}


def test_redelivered_events_leave_the_ledger_and_the_tags_as_they_were(aws: Aws, auditor, clock) -> None:
    backups = [good_run(aws, day(n)) for n in range(4)]
    deliver(auditor, clock, *backups)
    ledger, tags = aws.scan(), [tag_of(aws, b.key, b.version_id) for b in backups]

    for backup in reversed(backups):
        audit(auditor, backup.ended, backup.started, backup.ended)

    assert aws.scan() == ledger
    assert [tag_of(aws, b.key, b.version_id) for b in backups] == tags


def test_failed_and_unverified_runs_push_no_good_backup_out(aws: Aws, auditor, clock) -> None:
    backups = [good_run(aws, day(n)) for n in range(3)]
    deliver(auditor, clock, *backups)
    unverified = good_run(aws, day(4))
    unverified.ended["detail"]["sha256"] = "0" * 64

    clock.set(day(6))
    audit(auditor, failed_run(aws, day(3)), unverified.started, unverified.ended, failed_run(aws, day(5)))

    assert kept(aws) == [b.run_id for b in reversed(backups)]
    assert tag_of(aws, unverified.key, unverified.version_id) is None


def test_a_late_started_event_does_not_unpin_a_kept_backup(aws: Aws, auditor, clock) -> None:
    backup = good_run(aws, day(0))
    clock.set(backup.finished_at + timedelta(minutes=1))

    audit(auditor, backup.ended, backup.started)

    assert expires_at(aws, backup) == int(PINNED_UNTIL.timestamp())


def test_a_lowered_keep_last_releases_the_oldest_members_at_the_next_good_backup(aws: Aws, clock) -> None:
    backups = [good_run(aws, day(n)) for n in range(4)]
    deliver(make_auditor(aws, fleet_keeping(3), clock), clock, *backups[:3])

    deliver(make_auditor(aws, fleet_keeping(1), clock), clock, backups[3])

    assert kept(aws) == [backups[3].run_id]
    assert [tag_of(aws, b.key, b.version_id) for b in backups] == [
        "standard-monthly",
        "standard-daily",
        "standard-daily",
        "keep",
    ]


def test_a_release_interrupted_before_its_tags_is_completed_on_redelivery(
    aws: Aws, auditor, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    backups = [good_run(aws, day(n)) for n in range(4)]
    deliver(auditor, clock, *backups[:3])
    real_set_tag = auditor.objects.set_tag

    def s3_down_for_the_released_one(bucket: str, key: str, version: str | None, name: str, value: str) -> bool:
        if key == backups[0].key and value != "keep":
            raise ConnectionError("S3 unreachable")
        return real_set_tag(bucket, key, version, name, value)

    monkeypatch.setattr(auditor.objects, "set_tag", s3_down_for_the_released_one)
    with pytest.raises(ConnectionError):
        deliver(auditor, clock, backups[3])
    assert set(target_state(aws).keep_released) == {backups[0].run_id}  # owed, recorded with the new set
    assert tag_of(aws, backups[0].key, backups[0].version_id) == "keep"

    monkeypatch.setattr(auditor.objects, "set_tag", real_set_tag)
    audit(auditor, backups[3].ended)  # the SQS redelivery

    assert target_state(aws).keep_released == {}
    assert tag_of(aws, backups[0].key, backups[0].version_id) == "standard-monthly"
    assert kept(aws) == [b.run_id for b in reversed(backups[1:])]


def test_a_backup_released_while_it_was_being_tagged_keep_ends_with_its_tier(
    aws: Aws, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a slow audit can lose: it admits A, and before its keep tag lands a concurrent audit admits the
    newer B, releases A and tags it with its tier; the slow audit's keep tag must not be the last word."""
    auditor = make_auditor(aws, fleet_keeping(1), clock)
    a, b = good_run(aws, day(1)), good_run(aws, day(2))
    clock.set(b.finished_at + timedelta(minutes=1))
    audit(auditor, a.started, b.started)
    concurrent = make_auditor(aws, fleet_keeping(1), clock)
    real_set_tag = auditor.objects.set_tag

    def slow_keep_tag(bucket: str, key: str, version: str | None, name: str, value: str) -> bool:
        if key == a.key and value == "keep" and kept(aws) != [b.run_id]:
            audit(concurrent, b.ended)  # the other audit runs to its end meanwhile
            assert tag_of(aws, a.key, a.version_id) == run_record(aws, a).retention_tag  # released: its tier
        return real_set_tag(bucket, key, version, name, value)

    monkeypatch.setattr(auditor.objects, "set_tag", slow_keep_tag)
    audit(auditor, a.ended)

    assert kept(aws) == [b.run_id]
    assert tag_of(aws, a.key, a.version_id) == tag_of(aws, a.manifest) == "standard-monthly"
    assert expires_at(aws, a) == int((a.started_at + TTL).timestamp())
    assert tag_of(aws, b.key, b.version_id) == "keep"


@pytest.mark.parametrize("already_kept", [0, 1])
def test_a_keep_set_changed_by_a_concurrent_audit_is_read_again_not_overwritten(
    aws: Aws, auditor, clock, monkeypatch: pytest.MonkeyPatch, already_kept: int
) -> None:
    earlier = [good_run(aws, day(0))][:already_kept]  # the first keep-set write, or a later one
    deliver(auditor, clock, *earlier)
    first, second = good_run(aws, day(1)), good_run(aws, day(2))
    clock.set(second.finished_at + timedelta(minutes=1))
    concurrent = make_auditor(aws, auditor.fleet, clock)
    real_replace = aws.ledger.targets.__class__.replace_keep
    raced: list[bool] = []

    def racing_replace(self: Any, target: str, **kwargs: Any) -> bool:
        if not raced:
            raced.append(True)
            audit(concurrent, second.started, second.ended)  # commits the next revision first
        return real_replace(self, target, **kwargs)

    monkeypatch.setattr(aws.ledger.targets.__class__, "replace_keep", racing_replace)
    audit(auditor, first.started, first.ended)

    assert kept(aws) == [second.run_id, first.run_id, *(b.run_id for b in earlier)]
    assert target_state(aws).keep_revision == 2 + already_kept


def test_a_target_not_in_the_fleet_keeps_nothing(aws: Aws, auditor, clock) -> None:
    stranger = good_run(aws, day(0), target="not-in-fleet")

    deliver(auditor, clock, stranger)

    assert aws.ledger.targets.get("not-in-fleet") is None or kept(aws, "not-in-fleet") == []
    assert tag_of(aws, stranger.key, stranger.version_id) is None


def test_each_target_has_its_own_keep_set(aws: Aws, clock: SimulatedClock) -> None:
    auditor = make_auditor(aws, make_fleet({"db-1": daily_targets("orders", 2)}), clock)
    mine = [good_run(aws, day(n), target="orders-0") for n in range(4)]
    theirs = good_run(aws, day(5), target="orders-1")

    deliver(auditor, clock, *mine, theirs)

    assert kept(aws, "orders-0") == [b.run_id for b in reversed(mine[1:])]
    assert kept(aws, "orders-1") == [theirs.run_id]
