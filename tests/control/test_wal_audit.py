"""The audit of ``WAL Archived``: a real archived object counts; forged ones (another sender, another
target's or a made-up key, a different SHA-256, no object, no encryption, from the future) are refused and
record nothing (design rule 8). Heartbeats bring the server's WAL status to the targets the agent owns."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from backup_contracts.events import AgentHeartbeat
from backup_contracts.naming import agent_event_source, manifest_key, wal_object_key
from backup_functions.audit.wal import start_file_of

from .conftest import START, Aws, eventbridge_event
from .test_audit import deliver
from .wal_world import pitr_fleet, put_wal_object, seg, server_status, wal_archived, wal_event

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet():
    return pitr_fleet()


def refusals(function_logs) -> list[str]:
    return [line["reason"] for line in function_logs.lines() if line["message"].startswith("audit: event refused")]


def tags(aws: Aws, key: str) -> dict[str, str]:
    tagging = aws.session.client("s3").get_object_tagging(Bucket=aws.bucket, Key=key)
    return {tag["Key"]: tag["Value"] for tag in tagging["TagSet"]}


def test_a_real_archived_wal_object_is_recorded_tagged_and_locked(aws, auditor, lambda_context):
    key = put_wal_object(aws, seg(1))

    response = deliver(lambda_context, wal_event(wal_archived(aws, seg(1))))

    assert response == {"batchItemFailures": []}
    (recorded,) = aws.ledger.wal.files("orders-pitr", seg(1))
    assert (recorded.file, recorded.key, recorded.bucket) == (seg(1), key, aws.bucket)
    assert aws.ledger.wal.archive("orders-pitr").contiguous_through == seg(1)
    assert tags(aws, key) == {"retention": "standard-wal"}
    head = aws.session.client("s3").head_object(Bucket=aws.bucket, Key=key)
    assert head["ObjectLockRetainUntilDate"] >= START + timedelta(days=14)  # daily_days + 1 from archived_at


def test_a_redelivered_wal_event_records_the_file_once(aws, auditor, lambda_context):
    put_wal_object(aws, seg(1))
    event = wal_event(wal_archived(aws, seg(1)))
    deliver(lambda_context, event)
    before = aws.scan()

    deliver(lambda_context, event, event)

    assert aws.scan() == before


def test_wal_sent_by_another_agent_is_refused(aws, auditor, lambda_context, function_logs):
    put_wal_object(aws, seg(1))

    deliver(lambda_context, wal_event(wal_archived(aws, seg(1)), sender="db-2"))

    assert list(aws.ledger.wal.files("orders-pitr", seg(1))) == []
    assert "was sent by agent db-2" in refusals(function_logs)[0]


def test_wal_of_another_hosts_target_is_refused(aws, auditor, lambda_context, function_logs):
    key = put_wal_object(aws, seg(1), agent="db-2")
    archived = wal_archived(aws, seg(1), agent="db-2", key=key)

    deliver(lambda_context, wal_event(archived))

    assert aws.ledger.wal.archive("orders-pitr") is None
    assert "belongs to agent db-1" in refusals(function_logs)[0]


def test_wal_of_a_target_without_pitr_is_refused(aws, auditor, lambda_context, function_logs):
    key = put_wal_object(aws, seg(1), target="orders-0")

    deliver(lambda_context, wal_event(wal_archived(aws, seg(1), target="orders-0", key=key)))

    assert aws.ledger.wal.archive("orders-0") is None
    assert "archives no WAL" in refusals(function_logs)[0]


def test_wal_at_a_key_other_than_its_files_is_refused(aws, auditor, lambda_context, function_logs):
    key = wal_object_key("db-1", "orders-pitr", seg(2))  # another file's object passed off as seg(1)
    put_wal_object(aws, seg(2))

    deliver(lambda_context, wal_event(wal_archived(aws, seg(1), key=key)))

    assert list(aws.ledger.wal.files("orders-pitr", seg(1))) == []
    assert "is not this file's" in refusals(function_logs)[0]


def test_wal_whose_sha256_differs_from_the_objects_is_refused(aws, auditor, lambda_context, function_logs):
    put_wal_object(aws, seg(1))

    deliver(lambda_context, wal_event(wal_archived(aws, seg(1), sha256="ab" * 32)))

    assert list(aws.ledger.wal.files("orders-pitr", seg(1))) == []
    assert "sha256 metadata is" in refusals(function_logs)[0]


def test_wal_whose_object_does_not_exist_is_refused(aws, auditor, lambda_context, function_logs):
    deliver(lambda_context, wal_event(wal_archived(aws, seg(1))))

    assert aws.ledger.wal.archive("orders-pitr") is None
    assert "does not exist" in refusals(function_logs)[0]


def test_wal_stored_without_the_pipelines_key_is_refused(aws, auditor, lambda_context, function_logs):
    put_wal_object(aws, seg(1), kms_key=aws.other_key_arn)

    deliver(lambda_context, wal_event(wal_archived(aws, seg(1))))

    assert aws.ledger.wal.archive("orders-pitr") is None
    assert "not the pipeline's key" in refusals(function_logs)[0]


def test_wal_archived_in_the_future_is_refused(aws, auditor, lambda_context, function_logs):
    put_wal_object(aws, seg(1))
    archived = wal_archived(aws, seg(1), at=START + timedelta(hours=1))
    event = wal_event(archived)
    event["time"] = START.strftime("%Y-%m-%dT%H:%M:%SZ")  # the audit's clock stays at START

    deliver(lambda_context, event)

    assert aws.ledger.wal.archive("orders-pitr") is None
    assert "ahead of the audit's clock" in refusals(function_logs)[0]


def heartbeat(agent: str, *statuses) -> dict:
    beat = AgentHeartbeat(agent=agent, version="1.0", targets=[], sent_at=START, wal=list(statuses))
    return eventbridge_event(agent_event_source(agent), "Agent Heartbeat", json.loads(beat.model_dump_json()))


def test_a_heartbeat_stores_the_servers_wal_status_for_the_agents_own_pitr_targets(aws, auditor, lambda_context):
    mine = server_status(seg(7), START, last_failed_file=seg(6), last_failed_at=START)
    others = server_status(seg(9), START).model_copy(update={"target": "shop-0"})

    deliver(lambda_context, heartbeat("db-1", mine, others))

    archive = aws.ledger.wal.archive("orders-pitr")
    assert (archive.server_current_file, archive.server_last_failed_file) == (seg(7), seg(6))
    assert aws.ledger.wal.archive("shop-0") is None


def test_another_agents_heartbeat_sets_no_wal_status(aws, auditor, lambda_context):
    deliver(lambda_context, heartbeat("db-2", server_status(seg(7), START)))

    assert aws.ledger.wal.archive("orders-pitr") is None


@pytest.mark.parametrize(
    "manifest",
    [
        {"start_file": seg(5)},
        {"validator": {"start_file": seg(5)}},
        {"wal": {"wal_start_file": seg(5) + ".00000028.backup"}},
    ],
)
def test_a_base_backups_manifest_names_where_its_wal_starts(manifest):
    assert start_file_of(manifest) == seg(5)


def test_a_good_base_backup_starts_the_archive_and_its_watch(aws, auditor):
    from backup_contracts.events import BackupSucceeded

    good = BackupSucceeded(
        job_id="j1",
        run_id="r1",
        target="orders-pitr",
        agent="db-1",
        started_at=START,
        bucket=aws.bucket,
        key="agents/db-1/orders-pitr/2026/11/16/r1.tar.zst",
        finished_at=START + timedelta(minutes=3),
        bytes_in=10,
        bytes_stored=10,
        sha256="0" * 64,
        engine="postgresql-physical",
        format="tar",
        compression="zst",
        duration_s=180.0,
    )
    aws.session.client("s3").put_object(
        Bucket=aws.bucket, Key=manifest_key(good.key), Body=json.dumps({"start_file": seg(5)}).encode()
    )

    auditor.wal.base_backup(good, auditor.fleet.target("orders-pitr")[1])

    archive = aws.ledger.wal.archive("orders-pitr")
    assert (archive.start_file, archive.expected_since) == (seg(5), good.finished_at)
    assert archive.watch_deadline == good.finished_at + timedelta(minutes=5)


def test_wal_metrics_count_each_file_once(aws, auditor, lambda_context, capsys):
    put_wal_object(aws, seg(1))
    event = wal_event(wal_archived(aws, seg(1)))

    deliver(lambda_context, event)
    first = capsys.readouterr().out
    deliver(lambda_context, event)
    second = capsys.readouterr().out

    emf = [json.loads(line) for line in first.splitlines() if line.startswith('{"_aws"')]
    assert emf[-1]["WalFilesArchived"] == [1.0]
    assert emf[-1]["WalBytesStored"] == [float(wal_archived(aws, seg(1)).bytes_stored)]
    assert "WalFilesArchived" not in second


def test_the_key_does_not_depend_on_the_compression_label(aws, auditor, lambda_context):
    put_wal_object(aws, seg(1))  # agents/db-1/orders-pitr/wal/<file>.zst, as wal-push stores it

    deliver(lambda_context, wal_event(wal_archived(aws, seg(1), compression="zstd-3")))

    assert [f.compression for f in aws.ledger.wal.files("orders-pitr", seg(1))] == ["zstd-3"]
