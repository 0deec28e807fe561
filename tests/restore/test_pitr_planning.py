"""Point-in-time restores of a PITR target (docs/pitr.md, ``restore/pitr.py``, ``restore/wal_index.py``):
which base backup, which WAL, the index the agent fetches, the job that names it, and every refusal.

The world (``pitr_world.py``): base backup A (segments 0x10-0x11, finished A_END), B (0x57-0x58, finished
B_END), WAL 0x10..0x70 archived five minutes apart (``archived_at``); the clock stands at T0."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from botocore.exceptions import ClientError

from backup_contracts import ledger as keys
from backup_contracts.events import RestoreRequested
from backup_contracts.jobs import Job
from backup_contracts.naming import wal_index_key, wal_object_key
from backup_contracts.wal import WalIndex
from backup_functions.restore.messages import REASON_HELP

from .pitr_world import (
    A_END,
    B_END,
    B_START,
    LAST_SEGMENT,
    PG_AGENT,
    PITR,
    STAGING,
    Base,
    PitrWorld,
    archived_at,
    pitr_world,  # noqa: F401 - the fixture
    seg,
)

pytestmark = pytest.mark.integration

World = tuple[PitrWorld, Base, Base]


@pytest.fixture
def seeded(pitr_world: PitrWorld) -> World:  # noqa: F811 - the fixture imported above
    a = pitr_world.seed_base(A_END - timedelta(minutes=5), A_END, seg(0x10), seg(0x11))
    b = pitr_world.seed_base(B_START, B_END, seg(0x57), seg(0x58))
    pitr_world.seed_archive()
    return pitr_world, a, b


def dispatched(world: PitrWorld) -> tuple[Job, WalIndex, bytes, str]:
    """The one job on the PITR agent's queue, its WAL index as stored, and the job's message body."""
    url = world.resources.agent_queue_urls[PG_AGENT]
    messages = world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1, messages
    body = messages[0]["Body"]
    job = Job.model_validate_json(body)
    assert job.restore_id is not None
    stored = world.s3.get_object(Bucket=world.resources.bucket, Key=wal_index_key(job.restore_id))["Body"].read()
    return job, WalIndex.model_validate_json(stored), stored, body


def names(index: WalIndex) -> list[str]:
    return [entry.name for entry in index.files]


def first_archived_after(moment: datetime) -> int:
    return next(n for n in range(0x10, LAST_SEGMENT + 1) if archived_at(n) > moment)


# --------------------------------------------------------------------------- which base backup, which WAL
def test_a_time_exactly_at_a_base_backups_end_restores_that_base_backup(seeded: World) -> None:
    world, a, _ = seeded
    outcome = world.pitr_request(backup={"at": keys.iso(A_END)})
    assert outcome.action == "dispatched", outcome
    job, index, _, _ = dispatched(world)
    assert job.source is not None
    assert job.source.run_id == a.run_id
    assert job.source.wal is not None
    assert job.source.wal.recovery_target == "time"
    assert job.source.wal.recovery_target_time == A_END
    assert index.start_file == seg(0x10)
    assert index.timeline == 1
    assert names(index) == [seg(n) for n in range(0x10, first_archived_after(A_END) + 1)]
    assert seg(0x11) in names(index)  # the base backup's own last segment: it becomes consistent


def test_a_time_between_two_base_backups_replays_the_older_one_through_one_file_past_the_time(seeded: World) -> None:
    world, a, _ = seeded
    at = archived_at(0x30) + timedelta(minutes=2)  # inside segment 0x31, archived after it
    assert world.pitr_request(backup={"at": keys.iso(at)}).action == "dispatched"
    job, index, stored, _ = dispatched(world)
    assert job.source is not None
    assert job.source.run_id == a.run_id
    assert names(index) == [seg(n) for n in range(0x10, 0x32)]  # 0x31: the first file archived after the time
    assert archived_at(0x30) < at < archived_at(0x31)
    wal = job.source.wal
    assert wal is not None
    assert (wal.files, wal.last_file) == (len(index.files), seg(0x31))
    assert (wal.index_sha256, wal.index_bytes) == (hashlib.sha256(stored).hexdigest(), len(stored))


def test_each_index_entry_is_a_presigned_get_of_its_own_object_with_the_ledgers_checksum(seeded: World) -> None:
    world, _, _ = seeded
    at = archived_at(0x20) + timedelta(minutes=1)
    world.pitr_request(backup={"at": keys.iso(at)})
    _, index, _, _ = dispatched(world)
    for entry in index.files:
        row = world.ledger.wal.file(PITR, entry.name)
        assert row is not None
        assert (entry.sha256, entry.bytes_stored, entry.compression) == (row.sha256, row.bytes_stored, row.compression)
        url = urlparse(str(entry.url))
        assert url.path.endswith(wal_object_key(PG_AGENT, PITR, entry.name))
        assert "X-Amz-Signature" in parse_qs(url.query)


def test_the_urls_live_as_long_as_the_base_backups_the_job_deadline_plus_the_margin(seeded: World) -> None:
    world, _, _ = seeded
    world.pitr_request(backup={"at": keys.iso(archived_at(0x20) + timedelta(minutes=1))})
    job, index, _, _ = dispatched(world)
    assert job.source is not None
    assert job.source.presigned_url is not None
    assert job.source.wal is not None
    assert job.source.wal.index_url is not None
    expected = int((job.deadline + timedelta(minutes=15) - world.clock.now()).total_seconds())
    for url in (str(index.files[0].url), str(job.source.presigned_url), str(job.source.wal.index_url)):
        assert int(parse_qs(urlparse(url).query)["X-Amz-Expires"][0]) == expected


def test_a_time_during_the_newer_base_backup_uses_the_older_one(seeded: World) -> None:
    world, a, _ = seeded
    world.pitr_request(backup={"at": keys.iso(B_START + timedelta(minutes=2))})  # B started, not finished
    job, _, _, _ = dispatched(world)
    assert job.source is not None
    assert job.source.run_id == a.run_id


def test_a_time_after_the_newer_base_backups_end_uses_it(seeded: World) -> None:
    world, _, b = seeded
    world.pitr_request(backup={"at": keys.iso(B_END + timedelta(minutes=7))})
    job, index, _, _ = dispatched(world)
    assert job.source is not None
    assert job.source.run_id == b.run_id
    assert index.start_file == seg(0x57)
    assert names(index)[0] == seg(0x57)


def test_latest_is_the_newest_base_backup_and_all_the_wal_after_it_with_no_time_target(seeded: World) -> None:
    world, _, b = seeded
    world.pitr_request(backup={"latest": True})
    job, index, _, _ = dispatched(world)
    assert job.source is not None
    assert job.source.run_id == b.run_id
    assert job.source.wal is not None
    assert (job.source.wal.recovery_target, job.source.wal.recovery_target_time) == ("end", None)
    assert names(index) == [seg(n) for n in range(0x57, LAST_SEGMENT + 1)]


def test_a_run_id_is_that_base_backup_to_its_consistent_end(seeded: World) -> None:
    world, a, _ = seeded
    world.pitr_request(backup={"run_id": a.run_id})
    job, index, _, _ = dispatched(world)
    assert job.source is not None
    assert job.source.wal is not None
    assert job.source.wal.recovery_target == "immediate"
    assert names(index) == [seg(0x10), seg(0x11)]


# --------------------------------------------------------------------------- refusals
def rejected(world: PitrWorld, code: str, **fields: object) -> str:
    outcome = world.pitr_request(**fields)
    assert (outcome.action, outcome.reason_code) == ("rejected", code), outcome
    assert code in REASON_HELP
    assert world.all_jobs() == []
    return outcome.detail


def test_a_time_before_the_first_base_backups_end_is_refused_naming_the_earliest(seeded: World) -> None:
    world, _, _ = seeded
    reason = rejected(world, "before-first-base-backup", backup={"at": keys.iso(A_END - timedelta(seconds=1))})
    assert keys.iso(A_END) in reason


def test_a_time_the_archive_does_not_reach_yet_is_refused_with_the_lag(seeded: World) -> None:
    world, _, _ = seeded
    at = archived_at(LAST_SEGMENT) + timedelta(minutes=1)
    reason = rejected(world, "wal-not-archived-yet", backup={"at": keys.iso(at)})
    assert seg(LAST_SEGMENT) in reason
    assert "backupctl status" in reason


def test_a_time_in_the_future_is_refused(seeded: World) -> None:
    world, _, _ = seeded
    rejected(world, "time-in-future", backup={"at": keys.iso(world.clock.now() + timedelta(minutes=1))})


def test_a_gap_before_the_time_is_refused_naming_the_missing_segment_and_the_newer_base(pitr_world: PitrWorld) -> None:  # noqa: F811
    pitr_world.seed_base(A_END - timedelta(minutes=5), A_END, seg(0x10), seg(0x11))
    b = pitr_world.seed_base(B_START, B_END, seg(0x57), seg(0x58))
    pitr_world.seed_archive(skip=frozenset({0x30}))
    reason = rejected(pitr_world, "wal-gap", backup={"at": keys.iso(archived_at(0x40))})
    assert seg(0x30) in reason
    assert b.run_id in reason
    # a time before the gap, and a time after the newer base backup, are restorable
    assert pitr_world.pitr_request(backup={"at": keys.iso(archived_at(0x20))}).action == "dispatched"
    assert pitr_world.pitr_request(backup={"at": keys.iso(B_END + timedelta(minutes=6))}).action == "dispatched"


def test_an_in_place_restore_of_a_physical_target_is_refused(seeded: World) -> None:
    world, _, _ = seeded
    outcome = world.request(target=PITR, mode="in-place", backup={"latest": True})
    assert (outcome.action, outcome.reason_code) == ("rejected", "physical-in-place-refused")


def test_a_base_backup_whose_manifest_names_no_wal_is_refused(pitr_world: PitrWorld) -> None:  # noqa: F811
    base = pitr_world.seed_base(A_END - timedelta(minutes=5), A_END, seg(0x10), seg(0x11))
    pitr_world.s3.put_object(
        Bucket=pitr_world.resources.bucket,
        Key=base.key + ".manifest.json",
        Body=b'{"validator": {"timeline": 1}}',
    )
    rejected(pitr_world, "wal-position-unknown", backup={"run_id": base.run_id})


# --------------------------------------------------------------------------- the job, idempotency, drills
def test_the_job_stays_small_however_much_wal_it_replays(seeded: World) -> None:
    world, _, _ = seeded
    world.pitr_request(backup={"at": keys.iso(B_START + timedelta(minutes=1))})  # A, and WAL up to B
    _job, index, stored, body = dispatched(world)
    assert len(index.files) > 70
    assert len(stored) > 10 * len(body)
    assert len(body.encode()) < 6_000  # the index's URL and checksum, never its files


def test_the_index_is_sse_kms_under_the_coordinators_prefix(seeded: World) -> None:
    world, _, _ = seeded
    world.pitr_request(restore_id="r-pitr-kms", backup={"latest": True})
    head = world.s3.head_object(Bucket=world.resources.bucket, Key="restores/r-pitr-kms/wal-index.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(world.resources.kms_key_arn.rsplit("/", 1)[1])


def test_a_redelivered_request_sends_one_job_and_writes_the_index_once(seeded: World) -> None:
    world, _, _ = seeded
    at = keys.iso(archived_at(0x30))
    first = world.pitr_request(restore_id="r-pitr-twice", backup={"at": at})
    world.clock.advance(timedelta(minutes=3))
    again = world.pitr_request(restore_id="r-pitr-twice", backup={"at": at})
    assert (first.action, again.action) == ("dispatched", "duplicate")
    dispatched(world)  # exactly one job
    versions = world.s3.list_object_versions(Bucket=world.resources.bucket, Prefix="restores/r-pitr-twice/")
    assert len(versions.get("Versions", [])) == 1


def test_a_retried_dispatch_uses_the_index_an_earlier_attempt_stored(seeded: World) -> None:
    world, _, _ = seeded
    at = keys.iso(archived_at(0x30))
    world.pitr_request(restore_id="r-pitr-retry", backup={"at": at}, dry_run=True)  # plans, writes nothing
    assert "Versions" not in world.s3.list_object_versions(Bucket=world.resources.bucket, Prefix="restores/")
    planner, decisions = world.coordinator._planner, world.coordinator._decisions
    request = RestoreRequested.model_validate(
        {
            "restore_id": "r-x",
            "target": PITR,
            "destination": "orders-pitr-clone",
            "mode": "clone",
            "backup": {"at": at},
            "requested_by": "alice",
            "reason": "retry",
        }
    )
    plan = planner.plan(request, authenticated=False)
    deadline = world.clock.now() + timedelta(hours=1)
    first = decisions._job("r-x", plan, world.clock.now(), deadline)
    world.clock.advance(timedelta(minutes=2))  # a crash, then the redelivery signs other URLs
    second = decisions._job("r-x", plan, world.clock.now(), deadline + timedelta(minutes=2))
    assert first.source is not None
    assert second.source is not None
    assert first.source.wal == second.source.wal


def test_a_drill_of_a_pitr_target_replays_the_latest_base_backup_to_the_end_of_the_archive(seeded: World) -> None:
    world, _, b = seeded
    world.clock.advance(timedelta(minutes=1))
    report = world.coordinator.tick()
    assert len(report.drills_dispatched) == 1, report
    job, index, _, _ = dispatched(world)
    assert (job.kind, job.destination, job.mode) == ("drill", "orders-pitr-drill", "drill")
    assert job.source is not None
    assert job.source.run_id == b.run_id
    assert job.source.wal is not None
    assert job.source.wal.recovery_target == "end"
    assert names(index) == [seg(n) for n in range(0x57, LAST_SEGMENT + 1)]


def test_latest_right_after_a_base_backup_whose_wal_is_not_archived_yet_replays_the_one_before(
    pitr_world: PitrWorld,  # noqa: F811
) -> None:
    a = pitr_world.seed_base(A_END - timedelta(minutes=5), A_END, seg(0x10), seg(0x11))
    pitr_world.seed_archive(last=0x56)
    pitr_world.seed_base(B_START, B_END, seg(0x57), seg(0x58))  # just finished: 0x57 and 0x58 not archived
    pitr_world.request(target=PITR, destination="orders-pitr-clone", mode="clone", backup={"latest": True})
    job, index, _, _ = dispatched(pitr_world)
    assert job.source is not None
    assert job.source.run_id == a.run_id
    assert names(index)[-1] == seg(0x56)


# --------------------------------------------------------------------------- approvals
def test_an_approved_pitr_restore_replays_exactly_the_wal_the_approver_saw(seeded: World) -> None:
    world, _, b = seeded
    reply = world.submit(restore_id="r-pitr-ok", target=PITR, destination=STAGING, backup={"latest": True})
    assert reply.answer.action == "awaiting-approval", reply.answer
    world.seed_wal(seg(LAST_SEGMENT + 1), archived_at(LAST_SEGMENT + 1))  # archived while it waits
    assert world.approve("r-pitr-ok").answer.action == "dispatched"
    job, index, _, _ = dispatched(world)
    assert job.source is not None
    assert job.source.run_id == b.run_id
    assert names(index)[-1] == seg(LAST_SEGMENT)  # what was announced, not what arrived since


def test_an_approval_after_the_wal_it_named_expired_is_refused(seeded: World) -> None:
    world, _, _ = seeded
    at = keys.iso(B_END + timedelta(minutes=6))
    assert world.submit(restore_id="r-pitr-gone", target=PITR, destination=STAGING, backup={"at": at}).status == 200
    world.ledger.client.delete(keys.target_pk(PITR), f"WAL#{seg(0x59)}")
    reply = world.approve("r-pitr-gone")
    assert (reply.answer.action, reply.answer.reason_code) == ("rejected", "wal-gap"), reply.answer
    assert world.all_jobs() == []


class FailingOnce:
    """The index store whose first write fails as S3 can (then the real one)."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def create(self, bucket: str, key: str, body: bytes) -> bool:
        self.calls += 1
        if self.calls == 1:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "try again"}}, "PutObject")
        return bool(self.real.create(bucket, key, body))

    def get(self, bucket: str, key: str) -> bytes | None:
        return self.real.get(bucket, key)  # type: ignore[no-any-return]


def test_a_failed_index_write_sends_nothing_and_the_redelivery_dispatches_once(seeded: World) -> None:
    world, _, _ = seeded
    context = world.coordinator.context
    context.indexes = FailingOnce(context.indexes)
    at = keys.iso(archived_at(0x30))
    with pytest.raises(ClientError):
        world.pitr_request(restore_id="r-pitr-fail", backup={"at": at})
    assert world.all_jobs() == []
    assert world.pitr_request(restore_id="r-pitr-fail", backup={"at": at}).action == "dispatched"
    job, index, _, _ = dispatched(world)
    assert job.source is not None
    assert job.source.wal is not None
    assert job.source.wal.last_file == names(index)[-1] == seg(0x31)
