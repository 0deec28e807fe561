"""The WAL inside a retained base backup's own range (its manifest's start_file..end_file) is kept as long as
that backup: ``keep`` while the backup is in the keep-set, then its tier's tag (a monthly's for a monthly), and
locked as long; every other WAL file keeps the daily window's ``<class>-wal`` (audit/wal_keeping.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from backup_contracts.fleet import Fleet
from backup_contracts.naming import manifest_key

from .conftest import START, Aws
from .lifecycle import StoredVersion, next_midnight
from .test_audit import deliver, retention_tag, run_events, store
from .test_wal_retention import lifecycle_of
from .wal_world import pitr_fleet, put_wal_object, seg, wal_archived, wal_event

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)


@pytest.fixture
def fleet() -> Fleet:
    return pitr_fleet()


def archive(aws: Aws, ctx, *numbers: int, at=START) -> dict[int, str]:
    keys = {}
    for number in numbers:
        keys[number] = put_wal_object(aws, seg(number))
        deliver(ctx, wal_event(wal_archived(aws, seg(number), at)))
    return keys


def base_backup(aws: Aws, ctx, run: str, started, *, start: int, end: int) -> str:
    started_event, succeeded = run_events(
        aws, run=run, target="orders-pitr", started=started, engine="postgresql-physical"
    )
    store(aws, succeeded)
    key = succeeded["detail"]["key"]
    manifest = {"run_id": run, "validator": {"start_file": seg(start), "end_file": seg(end)}}
    aws.session.client("s3").put_object(Bucket=aws.bucket, Key=manifest_key(key), Body=json.dumps(manifest).encode())
    deliver(ctx, started_event, succeeded)
    return key


def lock_until(aws: Aws, key: str):
    return aws.session.client("s3").head_object(Bucket=aws.bucket, Key=key).get("ObjectLockRetainUntilDate")


def test_a_kept_base_backups_own_wal_is_kept_and_outside_it_the_window(aws, auditor, lambda_context):
    wal = archive(aws, lambda_context, 5, 6, 7)

    base_backup(aws, lambda_context, "r1", START + timedelta(hours=2), start=5, end=6)

    assert [retention_tag(aws, wal[n]) for n in (5, 6, 7)] == ["keep", "keep", "standard-wal"]


def test_wal_of_the_range_archived_after_its_base_backup_is_kept_too(aws, auditor, lambda_context):
    archive(aws, lambda_context, 5)
    base_backup(aws, lambda_context, "r1", START + timedelta(hours=2), start=5, end=6)

    late = archive(aws, lambda_context, 6, 7, at=START + timedelta(hours=3))

    assert (retention_tag(aws, late[6]), retention_tag(aws, late[7])) == ("keep", "standard-wal")


def test_a_monthly_base_backup_released_from_the_keep_set_keeps_its_wal_for_the_months_days(
    aws, auditor, lambda_context
):
    first = START + timedelta(hours=2)  # the month's first good backup: monthly
    wal = archive(aws, lambda_context, 5, 6, at=first + timedelta(minutes=1))  # its range, archived while it ran
    backup_key = base_backup(aws, lambda_context, "r1", first, start=5, end=6)
    for day in (1, 2, 3):  # three newer good backups push r1 out of the keep-set (keep_last 3)
        number = 10 * day
        archive(aws, lambda_context, number, at=first + day * DAY)
        base_backup(aws, lambda_context, f"r{day + 1}", first + day * DAY, start=number, end=number)

    assert retention_tag(aws, wal[5]) == "standard-monthly"
    assert lock_until(aws, wal[5]) >= first + timedelta(days=400)
    # on the synthesized template's lifecycle rules: the range's WAL goes no earlier than its base backup
    lifecycle = lifecycle_of(auditor.fleet)
    tags = {"retention": "standard-monthly"}
    backup_due = lifecycle.due(StoredVersion(backup_key, first + timedelta(minutes=3), tags))
    wal_due = lifecycle.due(StoredVersion(wal[5], first + timedelta(minutes=1), tags))
    assert backup_due == next_midnight(first + timedelta(days=400))
    assert wal_due is not None
    assert wal_due >= backup_due


def test_a_daily_base_backup_released_gives_its_wal_back_to_the_window(aws, auditor, lambda_context):
    first = START + timedelta(hours=2)
    base_backup(aws, lambda_context, "r0", first - timedelta(hours=1), start=1, end=1)  # takes the month and the week
    wal = archive(aws, lambda_context, 5, 6)
    base_backup(aws, lambda_context, "r1", first, start=5, end=6)  # a daily
    for day in (1, 2, 3):
        number = 10 * day
        archive(aws, lambda_context, number, at=first + day * DAY)
        base_backup(aws, lambda_context, f"r{day + 1}", first + day * DAY, start=number, end=number)

    assert retention_tag(aws, wal[5]) == "standard-wal"
