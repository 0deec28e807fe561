"""The streaming pipeline against a moto server: only a clean dump becomes a backup."""

from __future__ import annotations

import hashlib
import json
import threading

import boto3
import pytest
import zstandard
from botocore.exceptions import EndpointConnectionError

from backup_agent.admission import JobRefusedError
from backup_agent.aws import client_config
from backup_agent.config import AgentConfig
from backup_agent.events import EventBridgeSink
from backup_agent.pipeline import BackupRun, RunOutcome
from backup_contracts.naming import manifest_key

from .conftest import REGION, Stack, make_job
from .fakes import FakeEngine, MagicValidator, writer_argv

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def s3_client(max_attempts: int = 3):
    return boto3.client("s3", region_name=REGION, config=client_config(max_attempts=max_attempts))


def run_backup(stack: Stack, config: AgentConfig, engine: FakeEngine, s3=None, **job_extra) -> RunOutcome:
    run = BackupRun(
        make_job(stack, **job_extra),
        engine,
        config,
        s3=s3 or s3_client(),
        events=EventBridgeSink(stack.events, stack.bus),
    )
    return run.execute()


# ------------------------------------------------------------------ success


def test_successful_run_leaves_one_kms_encrypted_object_and_its_manifest(stack: Stack, agent_config: AgentConfig):
    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(3 * MiB)))

    assert outcome.ok
    key = outcome.event.key
    assert sorted(stack.objects()) == sorted([key, manifest_key(key)])
    head = stack.s3.head_object(Bucket=stack.bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == stack.kms_key_arn
    manifest_head = stack.s3.head_object(Bucket=stack.bucket, Key=manifest_key(key))
    assert manifest_head["ServerSideEncryption"] == "aws:kms"


def test_recorded_sha256_is_that_of_the_stored_bytes_which_decompress_to_the_dump(
    stack: Stack, agent_config: AgentConfig
):
    argv = writer_argv(20 * MiB)
    outcome = run_backup(stack, agent_config, FakeEngine(argv))

    stored = stack.s3.get_object(Bucket=stack.bucket, Key=outcome.event.key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == outcome.succeeded.sha256
    assert len(stored) == outcome.succeeded.bytes_stored
    raw = zstandard.ZstdDecompressor().stream_reader(stored).read()
    assert len(raw) == outcome.succeeded.bytes_in == 20 * MiB
    assert raw.startswith(b"FAKEDUMP")


def test_incompressible_stream_is_uploaded_in_several_parts_with_correct_checksum(
    stack: Stack, agent_config: AgentConfig
):
    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(20 * MiB, compressible=False)))

    assert outcome.manifest["parts"] == 4  # 6 + 6 + 6 + ~2 MiB
    stored = stack.s3.get_object(Bucket=stack.bucket, Key=outcome.event.key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == outcome.succeeded.sha256


def test_the_agent_tags_nothing_retention_tags_are_the_audits(stack: Stack, agent_config: AgentConfig):
    # the agent role has no s3:PutObjectTagging: a host cannot pick (or later shorten) its backups' retention
    sent: list[str] = []
    s3 = s3_client()
    s3.meta.events.register("before-send.s3.*", lambda request, **_: sent.append(str(request.headers)))
    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(MiB)), s3=s3)

    assert outcome.ok
    for key in (outcome.event.key, manifest_key(outcome.event.key)):
        assert stack.s3.get_object_tagging(Bucket=stack.bucket, Key=key)["TagSet"] == []
    assert not any("x-amz-tagging" in headers.lower() for headers in sent)


def test_the_object_and_its_manifest_are_created_only_as_new_keys(stack: Stack, agent_config: AgentConfig):
    # the bucket policy denies an agent's object creation without If-None-Match (no overwrite of a stored key)
    conditional: dict[str, bytes | str | None] = {}

    def record(request, event_name: str, **_) -> None:
        conditional[event_name.rsplit(".", 1)[-1]] = request.headers.get("If-None-Match")

    s3 = s3_client()
    s3.meta.events.register("before-send.s3.CompleteMultipartUpload", record)
    s3.meta.events.register("before-send.s3.PutObject", record)
    assert run_backup(stack, agent_config, FakeEngine(writer_argv(MiB)), s3=s3).ok

    assert conditional == {"CompleteMultipartUpload": b"*", "PutObject": b"*"}


def test_manifest_sidecar_and_metadata_describe_the_backup(stack: Stack, agent_config: AgentConfig):
    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(2 * MiB)))
    key = outcome.event.key

    manifest = json.loads(stack.s3.get_object(Bucket=stack.bucket, Key=manifest_key(key))["Body"].read())
    assert manifest["sha256"] == outcome.succeeded.sha256
    assert manifest["bytes_in"] == 2 * MiB
    assert manifest["engine"] == "fake"
    assert manifest["tool_version"] == "fake 1.0"
    assert manifest["compression"] == "zstd-1"  # as configured by the fixture
    assert manifest["validator"] == {"bytes_seen": 2 * MiB}
    assert manifest["restore_hint"]
    metadata = stack.s3.head_object(Bucket=stack.bucket, Key=key)["Metadata"]
    assert metadata["engine"] == "fake"
    assert metadata["run-id"] == outcome.event.run_id


def test_successful_run_emits_started_then_succeeded_with_version_and_sizes(stack: Stack, agent_config: AgentConfig):
    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(MiB)))

    events = stack.drain_events()
    assert [e["type"] for e in events] == ["Backup Started", "Backup Succeeded"]
    done = events[1]["detail"]
    assert done["version_id"] == stack.s3.head_object(Bucket=stack.bucket, Key=outcome.event.key)["VersionId"]
    assert done["bytes_in"] == MiB
    assert done["sha256"] == outcome.succeeded.sha256
    assert done["server_version"] == "fake-server 2.0"
    assert events[0]["detail"]["run_id"] == done["run_id"]
    assert done["s3_checksum_sha256"].endswith("-1")  # one part: the audit compares it with S3's own


# ------------------------------------------------------------------ a bad dump never becomes a backup


def test_dump_exiting_nonzero_after_writing_data_leaves_no_object(stack: Stack, agent_config: AgentConfig):
    engine = FakeEngine(writer_argv(5 * MiB, exit_code=3, stderr="pg_dump: error: connection lost\n"))
    outcome = run_backup(stack, agent_config, engine)

    assert not outcome.ok
    assert stack.objects() == []
    assert stack.uploads() == []
    failed = stack.drain_events()[-1]
    assert failed["type"] == "Backup Failed"
    assert failed["detail"]["stage"] == "dump"
    assert failed["detail"]["exit_code"] == 3
    assert "connection lost" in failed["detail"]["stderr_tail"]


def test_dump_producing_nothing_fails_and_leaves_no_object(stack: Stack, agent_config: AgentConfig):
    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(0)))

    assert not outcome.ok
    assert outcome.failed.stage == "dump"
    assert "no output" in outcome.failed.error
    assert stack.objects() == []
    assert stack.uploads() == []


def test_stream_rejected_by_the_validator_fails_at_verify(stack: Stack, agent_config: AgentConfig):
    engine = FakeEngine(writer_argv(2 * MiB, magic=b"WRONGMAG"), validator=lambda: MagicValidator(b"FAKEDUMP"))
    outcome = run_backup(stack, agent_config, engine)

    assert not outcome.ok
    assert outcome.failed.stage == "verify"
    assert "bad magic" in outcome.failed.error
    assert stack.objects() == []
    assert stack.uploads() == []
    assert stack.types() == ["Backup Started", "Backup Failed"]


class _CrashingValidator(MagicValidator):
    def feed(self, chunk: bytes) -> None:
        raise RuntimeError("validator bug")


def test_an_unexpected_error_mid_stream_is_reported_failed_and_leaves_nothing(stack: Stack, agent_config: AgentConfig):
    engine = FakeEngine(writer_argv(2 * MiB), validator=lambda: _CrashingValidator(b"FAKEDUMP"))
    outcome = run_backup(stack, agent_config, engine)

    assert "validator bug" in outcome.failed.error
    assert stack.objects() == []
    assert stack.uploads() == []
    assert stack.types() == ["Backup Started", "Backup Failed"]


def test_stderr_tail_in_the_failed_event_is_redacted(stack: Stack, agent_config: AgentConfig):
    from backup_contracts.redaction import register_secret

    register_secret("s3cr3t-Pa55word")
    engine = FakeEngine(writer_argv(10, exit_code=1, stderr="auth failed for password s3cr3t-Pa55word\n"))
    outcome = run_backup(stack, agent_config, engine)

    detail = json.dumps(stack.drain_events()[-1]["detail"])
    assert "s3cr3t-Pa55word" not in detail
    assert "***" in outcome.failed.stderr_tail


# ------------------------------------------------------------------ S3 failures


def test_an_upload_to_a_key_that_exists_fails_at_upload_and_leaves_the_stored_object(
    stack: Stack, agent_config: AgentConfig
):
    # Given an object already stored at the key this run will write (moto enforces If-None-Match like S3)
    run = BackupRun(
        make_job(stack),
        FakeEngine(writer_argv(MiB)),
        agent_config,
        s3=s3_client(),
        events=EventBridgeSink(stack.events, stack.bus),
    )
    stored = stack.s3.put_object(Bucket=stack.bucket, Key=run.key, Body=b"an earlier backup")
    # When the run completes its upload
    outcome = run.execute()
    # Then it is a Backup Failed at stage upload, the upload is aborted and the stored object is untouched
    assert not outcome.ok
    assert outcome.failed.stage == "upload"
    assert "already exists" in outcome.failed.error
    assert stack.types() == ["Backup Started", "Backup Failed"]
    assert stack.uploads() == []
    versions = stack.s3.list_object_versions(Bucket=stack.bucket, Prefix=run.key)["Versions"]
    assert [v["VersionId"] for v in versions] == [stored["VersionId"]]
    assert stack.s3.get_object(Bucket=stack.bucket, Key=run.key)["Body"].read() == b"an earlier backup"


def test_a_manifest_that_exists_is_never_replaced(stack: Stack, agent_config: AgentConfig):
    run = BackupRun(
        make_job(stack),
        FakeEngine(writer_argv(MiB)),
        agent_config,
        s3=s3_client(),
        events=EventBridgeSink(stack.events, stack.bus),
    )
    stack.s3.put_object(Bucket=stack.bucket, Key=manifest_key(run.key), Body=b"{}")

    outcome = run.execute()

    # the backup object itself is new and valid (its facts are also in the event); the manifest stays as it was
    assert outcome.ok
    assert stack.s3.get_object(Bucket=stack.bucket, Key=manifest_key(run.key))["Body"].read() == b"{}"


class _FailUploadParts:
    """A botocore before-send hook: UploadPart requests fail as if S3 were unreachable."""

    def __init__(self, after_parts: int, failures: int) -> None:
        self.after_parts = after_parts
        self.failures = failures
        self.calls = 0
        self.injected = 0
        self._lock = threading.Lock()

    def __call__(self, request, **_kwargs):
        with self._lock:
            self.calls += 1
            if self.calls > self.after_parts and self.injected < self.failures:
                self.injected += 1
                raise EndpointConnectionError(endpoint_url=request.url)


def test_transient_s3_failure_mid_upload_is_retried_and_the_backup_succeeds(stack: Stack, agent_config: AgentConfig):
    s3 = s3_client(max_attempts=3)
    hook = _FailUploadParts(after_parts=1, failures=2)
    s3.meta.events.register("before-send.s3.UploadPart", hook)

    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(20 * MiB, compressible=False)), s3=s3)

    assert outcome.ok
    assert hook.injected == 2
    stored = stack.s3.get_object(Bucket=stack.bucket, Key=outcome.event.key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == outcome.succeeded.sha256


def test_s3_unreachable_mid_upload_is_retried_then_fails_cleanly_with_the_upload_aborted(
    stack: Stack, agent_config: AgentConfig
):
    s3 = s3_client(max_attempts=3)
    hook = _FailUploadParts(after_parts=1, failures=10_000)
    s3.meta.events.register("before-send.s3.UploadPart", hook)

    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(40 * MiB, compressible=False)), s3=s3)

    assert not outcome.ok
    assert outcome.failed.stage == "upload"
    assert hook.injected >= 3  # every attempt of the failing part was made
    assert stack.objects() == []
    assert stack.uploads() == []
    assert stack.types() == ["Backup Started", "Backup Failed"]


def test_failed_upload_terminates_the_dump(stack: Stack, agent_config: AgentConfig):
    s3 = s3_client(max_attempts=1)
    s3.meta.events.register("before-send.s3.UploadPart", _FailUploadParts(after_parts=0, failures=10_000))
    engine = FakeEngine(writer_argv(400 * MiB, compressible=False, delay=0.01))

    outcome = run_backup(stack, agent_config, engine, s3=s3)

    assert not outcome.ok
    assert outcome.failed.stage == "upload"
    assert engine.dumps[0].proc.returncode is not None  # reaped, not left writing 400 MiB
    assert engine.dumps[0].proc.returncode < 0  # it was killed by a signal, not run to completion
    assert stack.uploads() == []


def test_s3_refusing_to_start_the_upload_stops_the_already_started_dump(stack: Stack, agent_config: AgentConfig):
    s3 = s3_client(max_attempts=1)

    def refuse(**_: object) -> None:
        raise EndpointConnectionError(endpoint_url="http://s3.invalid")

    s3.meta.events.register("before-send.s3.CreateMultipartUpload", refuse)
    engine = FakeEngine(writer_argv(400 * MiB, compressible=False, delay=0.01))

    outcome = run_backup(stack, agent_config, engine, s3=s3)

    assert outcome.failed.stage == "upload"
    assert "cannot start the multipart upload" in outcome.failed.error
    assert engine.dumps[0].proc.returncode is not None  # reaped
    assert engine.dumps[0].proc.returncode < 0  # killed, not left writing 400 MiB
    assert stack.objects() == []
    assert stack.types() == ["Backup Started", "Backup Failed"]


# ------------------------------------------------------------------ the job's prefix


def test_job_whose_prefix_is_not_the_agents_own_is_refused(stack: Stack, agent_config: AgentConfig):
    with pytest.raises(JobRefusedError, match="outside this agent"):
        run_backup(stack, agent_config, FakeEngine(writer_argv(10)), key_prefix="agents/other-host/")
    assert stack.types() == []


def test_key_stays_below_a_narrower_job_prefix(stack: Stack, agent_config: AgentConfig):
    outcome = run_backup(stack, agent_config, FakeEngine(writer_argv(10)), key_prefix="agents/demo-host/app/")

    assert outcome.event.key.startswith("agents/demo-host/app/")
    assert outcome.event.key.endswith(".bin.zst")
