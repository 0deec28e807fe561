"""A target that fails for longer than every age limit keeps its last keep_last good backups.

Played on a simulated clock: the real audit handles the target's runs against moto (it tags, locks and keeps
the ledger), and the lifecycle rules *of the synthesized template* (tests/control/lifecycle.py evaluates
them; moto never runs lifecycle) expire whatever they match, as S3 would each night — here after every
good day and then every ten days, which gives the same result because nothing changes a tag in between
(every evaluation reads the tags again, so a failure that did would be seen). The target backs up daily
for twenty days, fails for 500 (longer than its longest tier, monthly: 400 days), then recovers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from backup_contracts import ledger as keys
from backup_contracts.fleet import Fleet
from backup_contracts.naming import RETENTION_TAG
from local_pipeline.clock import SimulatedClock
from stacks.app_factory import cdk_json_context
from stacks.storage import Storage

from .conftest import Aws, daily_targets, make_fleet
from .keep_world import Backup, audit, failed_run, good_run, make_auditor, run_record
from .lifecycle import Lifecycle, StoredVersion

pytestmark = pytest.mark.integration

MONDAY = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)
GOOD_DAYS = 20  # Nov 16 .. Dec 5: two ISO weeks begin and a month begins, so every tier occurs
FAILING_DAYS = 500  # longer than the longest tier (standard: monthly_days 400)
KEEP_LAST = 3  # the standard class's default
TIER_DAYS = {"standard-daily": 14, "standard-weekly": 62, "standard-monthly": 400}


def day(n: int) -> datetime:
    return MONDAY + timedelta(days=n)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return make_fleet({"db-1": daily_targets("orders", 1)})


@pytest.fixture(scope="module")
def lifecycle(fleet: Fleet) -> Lifecycle:
    """The backup bucket's lifecycle rules, read from the template the Storage construct synthesizes."""
    stack = Stack(App(context=cdk_json_context()), "Bare")
    storage = Storage(stack, "Storage", fleet=fleet)
    bucket = Template.from_stack(stack).to_json()["Resources"][stack.get_logical_id(storage.bucket.node.default_child)]  # type: ignore[arg-type]
    assert bucket["Properties"]["ObjectLockEnabled"] is True
    return Lifecycle.of_bucket(bucket)


@dataclass
class Bucket:
    """The backups as lifecycle sees them: when each was created (simulated), and which were expired when."""

    aws: Aws
    lifecycle: Lifecycle
    created: dict[tuple[str, str | None], datetime] = field(default_factory=dict)
    expired: dict[tuple[str, str | None], datetime] = field(default_factory=dict)

    def store(self, backup: Backup) -> None:
        self.created[(backup.key, backup.version_id)] = backup.finished_at
        self.created[(backup.manifest, None)] = backup.finished_at

    def current(self) -> Iterator[tuple[str, str | None]]:
        return (version for version in self.created if version not in self.expired)

    def tags(self, key: str, version_id: str | None) -> dict[str, str]:
        location = {"Bucket": self.aws.bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
        return {t["Key"]: t["Value"] for t in self.aws.session.client("s3").get_object_tagging(**location)["TagSet"]}

    def nightly(self, now: datetime) -> None:
        """Lifecycle's run: every current version a rule removes gets its delete marker."""
        s3 = self.aws.session.client("s3")
        for key, version_id in list(self.current()):
            version = StoredVersion(key, self.created[(key, version_id)], self.tags(key, version_id))
            if self.lifecycle.removes(version, now):
                s3.delete_object(Bucket=self.aws.bucket, Key=key)  # a delete marker: allowed under Object Lock
                self.expired[(key, version_id)] = now

    def alive(self, backup: Backup) -> bool:
        return (backup.key, backup.version_id) not in self.expired and (backup.manifest, None) not in self.expired

    def tag(self, backup: Backup) -> str | None:
        return self.tags(backup.key, backup.version_id).get(RETENTION_TAG)


def restorable(aws: Aws, now: datetime) -> list[str]:
    """The good runs a restore could still find once DynamoDB's TTL has removed every expired record."""
    items = aws.ledger.client.query(keys.target_pk("orders-0"), keys.RUN_SK_PREFIX, newest_first=True)
    return [
        i["run_id"] for i in items if i.get("state") == "succeeded" and int(i[keys.TTL_ATTRIBUTE]) > now.timestamp()
    ]


def test_a_target_failing_past_every_age_limit_keeps_its_last_good_backups(
    aws: Aws, fleet: Fleet, lifecycle: Lifecycle
) -> None:
    clock = SimulatedClock(MONDAY)
    auditor = make_auditor(aws, fleet, clock)
    bucket = Bucket(aws, lifecycle)
    backups: list[Backup] = []

    # Twenty good days: each new good backup joins the keep-set and the oldest member leaves it.
    for n in range(GOOD_DAYS):
        backup = good_run(aws, day(n))
        bucket.store(backup)
        clock.set(backup.finished_at + timedelta(minutes=1))
        audit(auditor, backup.started, backup.ended)
        backups.append(backup)
        bucket.nightly(clock.now())
        newest = backups[-KEEP_LAST:]
        assert [bucket.tag(b) for b in newest] == ["keep"] * len(newest)
        assert [bucket.tag(b) for b in backups[:-KEEP_LAST] if bucket.alive(b)] == [
            run_record(aws, b).retention_tag for b in backups[:-KEEP_LAST] if bucket.alive(b)
        ]
        assert all(bucket.alive(b) for b in newest)
    tiers = {b.run_id: run_record(aws, b).retention_tag for b in backups}
    assert set(tiers.values()) == set(TIER_DAYS)  # every tier is played
    last_good = backups[-KEEP_LAST:]

    # 500 days of failures: one failed run every ten days; lifecycle runs every ten days.
    for n in range(GOOD_DAYS, GOOD_DAYS + FAILING_DAYS + 1, 10):
        clock.set(day(n) + timedelta(hours=1))
        audit(auditor, failed_run(aws, day(n)))
        bucket.nightly(clock.now())
        assert all(bucket.alive(b) for b in last_good), f"a kept backup expired on day {n}"
    end = clock.now()

    # Every other backup expired at its tier's age, no earlier: lifecycle really ran, and by the tier.
    for backup in backups[:-KEEP_LAST]:
        due = lifecycle.due(StoredVersion(backup.key, backup.finished_at, {RETENTION_TAG: tiers[backup.run_id]}))
        assert due is not None
        assert due <= bucket.expired[(backup.key, backup.version_id)] < due + timedelta(days=10)
        assert due - backup.finished_at >= timedelta(days=TIER_DAYS[tiers[backup.run_id]])
    assert sorted(bucket.current()) == sorted(
        [(b.key, b.version_id) for b in last_good] + [(b.manifest, None) for b in last_good]
    )
    # … and a restore still finds them: their run records outlived the ledger TTL, the others did not.
    assert restorable(aws, end) == [b.run_id for b in reversed(last_good)]
    assert aws.ledger.runs.latest_good("orders-0").run_id == last_good[-1].run_id  # type: ignore[union-attr]

    # The target recovers: the new good backup joins; the oldest member, long past its tier's age, expires.
    recovered = good_run(aws, end + timedelta(hours=1))
    bucket.store(recovered)
    clock.set(recovered.finished_at + timedelta(minutes=1))
    audit(auditor, recovered.started, recovered.ended)
    bucket.nightly(next_night := clock.now() + timedelta(days=1))
    assert [bucket.alive(b) for b in [*last_good, recovered]] == [False, True, True, True]
    assert bucket.expired[(last_good[0].key, last_good[0].version_id)] == next_night
    assert restorable(aws, next_night) == [recovered.run_id, last_good[2].run_id, last_good[1].run_id]
