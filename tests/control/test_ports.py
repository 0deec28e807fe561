"""The functions' boto3 adapters against moto: what each port promises its callers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from backup_functions import alerts
from backup_functions.ports import QueueMessage, S3ObjectStore, SnsNotifier, SqsJobQueue

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
