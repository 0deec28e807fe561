"""An agent event that points at an object the audit cannot or must not look at (another bucket, a name that
is no bucket at all, an empty key) makes the run "unverified" with the reason in words: it is never an
exception that sends the record to the DLQ and leaves the run "started" forever."""

from __future__ import annotations

import pytest

from .conftest import Aws
from .test_audit import deliver, run_events, run_item, store

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bucket": "someone-elses-bucket"}, ("not the pipeline's bucket", 0)),  # HeadObject there: NoSuchBucket
        ({"bucket": "Not A Bucket!"}, ("not the pipeline's bucket", 0)),  # botocore refuses the name itself
        ({"bucket": ""}, ("not the pipeline's bucket", 0)),
        ({"key": ""}, ("outside the agent's prefix", 0)),  # botocore refuses an empty key
        ({"key": "agents/db-1/" + "é" * 600}, ("longer than S3 allows", 0)),  # S3: KeyTooLong
        ({"key": "agents/db-1/../../etc/passwd"}, ("not found", 1)),  # in our bucket: asked, and judged
    ],
)
def test_a_run_whose_object_the_audit_cannot_look_at_is_unverified_not_a_crash(
    aws: Aws, auditor, lambda_context, changes, expected
):
    problem, asked = expected
    started, succeeded = run_events(aws)
    store(aws, succeeded)
    started["detail"].update(changes)
    succeeded["detail"].update(changes)

    response = deliver(lambda_context, started, succeeded)

    assert response == {"batchItemFailures": []}
    run = run_item(aws)
    assert run["state"] == "unverified"
    assert any(problem in p for p in run["verification"]["problems"]), run["verification"]["problems"]
    assert aws.calls["s3.HeadObject"] == asked  # nothing is asked of a bucket or key that cannot be the run's


def test_the_unverified_alert_names_the_foreign_bucket_on_one_line(aws: Aws, auditor, lambda_context):
    started, succeeded = run_events(aws, bucket="someone-elses-bucket")

    deliver(lambda_context, started, succeeded)

    (alert,) = aws.alerts()
    assert "someone-elses-bucket" in alert["Message"]
    assert "BACKUP NOT VERIFIED" in alert["Subject"]
