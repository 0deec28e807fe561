"""The agent's S3 client against the moto server: how upload parts are signed and checksummed."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

pytestmark = pytest.mark.integration


def test_the_agents_s3_client_sends_parts_with_a_signed_checksum_header_instead_of_hashing_the_body_twice(
    stack, agent_config
) -> None:
    from backup_agent.cli import Clients
    from backup_agent.uploader import MultipartUpload

    s3 = Clients(agent_config).get("s3")
    sent: list[dict[str, str]] = []
    s3.meta.events.register("before-send.s3.UploadPart", lambda request, **_: sent.append(dict(request.headers)))
    body = os.urandom(6 * 1024 * 1024)
    upload = MultipartUpload(s3, bucket=stack.bucket, key="k/unsigned", kms_key_id=stack.kms_key_arn, metadata={})
    upload.start()
    upload.submit(body)
    upload.complete()

    assert len(sent) == 1
    headers = {name.lower(): value.decode() if isinstance(value, bytes) else value for name, value in sent[0].items()}
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert "x-amz-checksum-sha256" in headers["authorization"]  # the checksum itself is signed
    assert stack.s3.get_object(Bucket=stack.bucket, Key="k/unsigned")["Body"].read() == body
