"""The functions' boto3 adapters against moto: what each port promises its callers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from backup_functions import alerts
from backup_functions.ports import QueueMessage, Retention, S3ObjectStore, SnsNotifier, SqsJobQueue

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 16, 5, 0, tzinfo=UTC)


def test_the_notifier_delivers_subject_body_and_attributes(aws):
    situation = alerts.Situation(
        pipeline="bp-test", agent="db-1", target="orders-pg", since=NOW, now=NOW, deadline=NOW - timedelta(minutes=10)
    )
    alert = alerts.run_stuck(situation)

    SnsNotifier(aws.client("sns"), aws.topic_arn).notify(alert)

    [received] = aws.alerts()
    assert received["Subject"] == alert.subject
    assert received["Message"] == alert.body
    assert received["MessageAttributes"]["kind"]["Value"] == "end"
    assert json.loads(received["MessageAttributes"]["alert"]["Value"])["target"] == "orders-pg"


def test_a_batch_over_ten_messages_is_refused_before_any_call(aws):
    queue = SqsJobQueue(aws.client("sqs"))
    with pytest.raises(ValueError, match="at most 10"):
        queue.send_batch("https://example.invalid/q", [QueueMessage(str(i), "{}") for i in range(11)])


def test_a_missing_object_or_version_heads_as_none_and_is_not_tagged(aws):
    objects = S3ObjectStore(aws.client("s3"))
    version = aws.put_backup_object("agents/db-1/x.zst", b"body")

    assert objects.head(aws.bucket, "agents/db-1/x.zst", version) is not None
    assert objects.head(aws.bucket, "agents/db-1/absent.zst", None) is None
    assert objects.head(aws.bucket, "agents/db-1/x.zst", "not-a-version") is None
    assert objects.set_tag(aws.bucket, "agents/db-1/absent.zst", None, "retention", "standard-daily") is False


def test_tagging_keeps_the_other_tags(aws):
    objects = S3ObjectStore(aws.client("s3"))
    s3 = aws.client("s3")
    s3.put_object(Bucket=aws.bucket, Key="k", Body=b"x", Tagging="owner=ops&retention=short-daily")

    assert objects.set_tag(aws.bucket, "k", None, "retention", "standard-monthly")

    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=aws.bucket, Key="k")["TagSet"]}
    assert tags == {"owner": "ops", "retention": "standard-monthly"}


def test_object_lock_retention_is_set_on_exactly_that_version_and_read_back(aws):
    objects = S3ObjectStore(aws.client("s3"))
    old = aws.put_backup_object("agents/db-1/x.zst", b"first")
    new = aws.put_backup_object("agents/db-1/x.zst", b"second")
    until = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

    assert objects.retention(aws.bucket, "agents/db-1/x.zst", old) == (True, None)
    assert objects.set_retention(aws.bucket, "agents/db-1/x.zst", old, Retention("COMPLIANCE", until))

    assert objects.retention(aws.bucket, "agents/db-1/x.zst", old) == (True, Retention("COMPLIANCE", until))
    assert objects.retention(aws.bucket, "agents/db-1/x.zst", new) == (True, None)


def test_a_missing_object_has_no_retention_and_is_not_locked(aws):
    assert S3ObjectStore(aws.client("s3")).retention(aws.bucket, "agents/db-1/absent.zst", None) == (False, None)
    # moto fails on PutObjectRetention of a missing key; S3 answers NoSuchKey (NoSuchVersion for a version)
    s3 = aws.session.client("s3")
    until = datetime(2030, 1, 1, tzinfo=UTC)
    with Stubber(s3) as stub:
        stub.add_client_error("put_object_retention", "NoSuchKey", http_status_code=404)
        stub.add_client_error("put_object_retention", "NoSuchVersion", http_status_code=404)
        stub.add_client_error("put_object_retention", "InvalidArgument", "retain until date must be in the future")
        objects = S3ObjectStore(s3)
        assert objects.set_retention(aws.bucket, "gone", None, Retention("GOVERNANCE", until)) is False
        assert objects.set_retention(aws.bucket, "gone", "v1", Retention("GOVERNANCE", until)) is False
        with pytest.raises(ClientError, match="InvalidArgument"):  # a refused date is an error, not "not found"
            objects.set_retention(aws.bucket, "k", None, Retention("GOVERNANCE", until))
