"""Off-site copies (pipeline.offsite): the audit expects a copy of every good backup, the watchdog's off-site
check reads it back from the vault (moto, in the vault's region, filled by the local replication stand-in),
and a copy that is missing, different or unreadable past the lag pages once, until it verifies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from backup_contracts import ledger as keys
from backup_contracts.fleet import Fleet
from backup_contracts.naming import manifest_key
from backup_functions.ledger import OffsiteCopy, RunRecord
from backup_functions.ledger.targets import TargetStates
from backup_functions.ports import ObjectStore, S3ObjectStore, SnsNotifier
from backup_functions.watchdog.handler import run_tick
from backup_functions.watchdog.ports import TickReport
from local_pipeline.replication import LocalVault, create_vault, replicator
from local_pipeline.runner import LambdaContext

from .conftest import Aws, daily_targets, make_fleet
from .test_audit import BODY, T0, deliver, run_events, store

pytestmark = pytest.mark.integration

VAULT_REGION = "eu-central-1"
MOTO_ACCOUNT = "123456789012"
M = timedelta(minutes=1)
GOOD_AT = T0 + 3 * M  # run_events' runs end three minutes after they start
OFFSITE = {"region": VAULT_REGION, "account": MOTO_ACCOUNT, "primary_account": MOTO_ACCOUNT, "lag": "1h"}


@pytest.fixture
def fleet() -> Fleet:
    needs_copy = daily_targets("orders", 1, rpo_needs_offsite=True)
    return make_fleet({"db-1": [*daily_targets("orders", 1), {**needs_copy[0], "name": "ledgerdb"}]}, offsite=OFFSITE)


@pytest.fixture
def vault(aws: Aws, fleet: Fleet) -> LocalVault:
    made = create_vault(aws.session, fleet)
    assert made is not None
    return made


@pytest.fixture
def ctx() -> LambdaContext:
    return LambdaContext(function_name="bp-test-audit")


def good_backup(aws: Aws, ctx: LambdaContext, *, target: str = "orders-0", run: str = "r1") -> dict[str, Any]:
    """A verified backup, its object and manifest stored as the agent writes them."""
    started, succeeded = run_events(aws, target=target, run=run)
    store(aws, succeeded)
    detail = succeeded["detail"]
    manifest = {"run_id": run, "sha256": detail["sha256"], "bytes_stored": detail["bytes_stored"]}
    aws.session.client("s3").put_object(Bucket=aws.bucket, Key=manifest_key(detail["key"]), Body=json.dumps(manifest))
    assert deliver(ctx, started, succeeded) == {"batchItemFailures": []}
    return dict(detail)


def tick(aws: Aws, fleet: Fleet, vault: LocalVault, now: datetime, *, store: ObjectStore | None = None) -> TickReport:
    aws.ledger.jobs.advance_marker(now, "fleet")  # a running dispatcher (else the watchdog pages that)
    reader = store or S3ObjectStore(aws.session.client("s3", region_name=vault.region))
    return run_tick(
        now, fleet=fleet, ledger=aws.ledger, notifier=SnsNotifier(aws.client("sns"), aws.topic_arn), vault=reader
    )


def copy_of(aws: Aws, target: str = "orders-0", run: str = "r1") -> OffsiteCopy:
    item = aws.ledger.offsite.get(target, T0, run)
    assert item is not None
    return item


def alerts(aws: Aws) -> list[tuple[str, str, str]]:
    received = aws.alerts()
    return [
        (m["MessageAttributes"]["kind"]["Value"], m["MessageAttributes"]["phase"]["Value"], m["Subject"])
        for m in received
    ]


def test_a_good_backup_owes_a_copy_that_verifies_once_replicated(aws, auditor, fleet, vault, ctx) -> None:
    detail = good_backup(aws, ctx)
    pending = copy_of(aws)
    assert (pending.state, pending.watch_kind, pending.due_by) == ("pending", "offsite", GOOD_AT + timedelta(hours=1))

    report = tick(aws, fleet, vault, GOOD_AT + 5 * M)
    assert report.offsite is not None
    assert report.offsite.pending == ["orders-0/r1"]
    assert "is not in the vault (yet)" in copy_of(aws).problems[0]

    assert replicator(aws.session, aws.bucket, vault).replicate() == [detail["key"], manifest_key(detail["key"])]
    report = tick(aws, fleet, vault, GOOD_AT + 10 * M)

    assert report.offsite is not None
    assert report.offsite.verified == ["orders-0/r1"]
    verified = copy_of(aws)
    assert verified.state == "verified"
    assert verified.watch_deadline is None
    assert set(verified.checksum_sources) >= {"metadata", "s3-full-object-checksum", "manifest"}
    run = RunRecord.model_validate(aws.ledger.client.get(keys.target_pk("orders-0"), keys.run_sk(T0, "r1")))
    assert run.offsite_bucket == vault.bucket
    assert run.offsite_version_id == verified.vault_version_id
    state = aws.ledger.targets.get("orders-0")
    assert state is not None
    assert state.last_offsite_run_id == "r1"
    assert state.last_offsite_good_at == GOOD_AT
    assert alerts(aws) == []


def test_a_copy_missing_past_the_lag_pages_once_and_resolves_when_it_arrives(aws, auditor, fleet, vault, ctx) -> None:
    good_backup(aws, ctx)
    for minutes in range(5, 60, 5):
        tick(aws, fleet, vault, GOOD_AT + minutes * M)
    assert alerts(aws) == []

    tick(aws, fleet, vault, GOOD_AT + 60 * M)
    tick(aws, fleet, vault, GOOD_AT + 65 * M)
    opened = alerts(aws)
    assert [(kind, phase) for kind, phase, _ in opened] == [("offsite", "open")]
    assert "OFF-SITE COPY MISSING" in opened[0][2]
    assert "orders-0" in opened[0][2]

    replicator(aws.session, aws.bucket, vault).replicate()
    tick(aws, fleet, vault, GOOD_AT + 70 * M)

    assert [(kind, phase) for kind, phase, _ in alerts(aws)] == [("offsite", "resolved")]
    assert copy_of(aws).state == "verified"


def test_a_copy_that_differs_from_its_run_never_counts(aws, auditor, fleet, vault, ctx) -> None:
    detail = good_backup(aws, ctx)
    replicator(aws.session, aws.bucket, vault).replicate()
    forged = BODY[:-1] + b"y"  # same size, same metadata, other bytes: only a checksum tells
    aws.session.client("s3", region_name=VAULT_REGION).put_object(
        Bucket=vault.bucket,
        Key=detail["key"],
        Body=forged,
        Metadata={"run-id": "r1", "sha256": detail["sha256"]},
        ChecksumAlgorithm="SHA256",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=vault.key_arn,
    )

    tick(aws, fleet, vault, GOOD_AT + 61 * M)

    copy = copy_of(aws)
    assert copy.state == "pending"
    assert any("full-object SHA-256" in problem for problem in copy.problems)
    assert [(kind, phase) for kind, phase, _ in alerts(aws)] == [("offsite", "open")]


def test_a_copy_without_its_manifest_is_not_yet_a_copy(aws, auditor, fleet, vault, ctx) -> None:
    detail = good_backup(aws, ctx)
    replication = replicator(aws.session, aws.bucket, vault)
    replication.hold = {manifest_key(detail["key"])}
    replication.replicate()

    tick(aws, fleet, vault, GOOD_AT + 5 * M)

    assert copy_of(aws).state == "pending"
    assert any("manifest.json is not in the vault" in p for p in copy_of(aws).problems)


class DeniedVault(S3ObjectStore):
    """The vault answering AccessDenied (a vault bucket policy that does not let the watchdog read)."""

    def head(self, bucket: str, key: str, version_id: str | None) -> dict[str, Any] | None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "HeadObject")


def test_an_unreadable_vault_is_a_pending_copy_with_the_reason_not_a_failed_tick(aws, auditor, fleet, vault, ctx):
    good_backup(aws, ctx)
    replicator(aws.session, aws.bucket, vault).replicate()
    denied = DeniedVault(aws.session.client("s3", region_name=VAULT_REGION))

    report = tick(aws, fleet, vault, GOOD_AT + 61 * M, store=denied)

    assert report.errors == []
    assert report.offsite is not None
    assert report.offsite.unreadable == ["orders-0/r1"]
    assert copy_of(aws).state == "pending"
    assert "AccessDenied" in copy_of(aws).problems[0]
    opened = list(aws.alerts())
    assert [m["MessageAttributes"]["kind"]["Value"] for m in opened] == ["offsite"]
    assert "AccessDenied" in opened[0]["Message"]  # the page says why


def test_a_target_that_needs_its_copy_counts_a_backup_toward_its_rpo_only_once_verified(
    aws, auditor, fleet, vault, ctx
):
    good_backup(aws, ctx, target="ledgerdb", run="r2")
    before = aws.ledger.targets.get("ledgerdb")
    assert before is not None
    assert before.last_good_run_id == "r2"
    assert before.watch_deadline is None  # the good backup alone did not move the RPO watch

    replicator(aws.session, aws.bucket, vault).replicate()
    tick(aws, fleet, vault, GOOD_AT + 5 * M)

    after = aws.ledger.targets.get("ledgerdb")
    assert after is not None
    assert (after.watch_kind, after.watch_deadline) == ("rpo", GOOD_AT + timedelta(hours=26))
    plain = aws.ledger.targets.get("orders-0")
    assert plain is None or plain.last_offsite_run_id is None


class TestWithoutAVault:
    @pytest.fixture
    def fleet(self) -> Fleet:
        return make_fleet({"db-1": daily_targets("orders", 1)})

    def test_no_copy_is_expected(self, aws, auditor, ctx) -> None:
        good_backup(aws, ctx)
        assert aws.ledger.client.query(keys.target_pk("orders-0"), keys.OFFSITE_SK_PREFIX) == []


def test_copies_of_several_targets_late_at_once_page_one_replication_incident(aws, auditor, fleet, vault, ctx) -> None:
    good_backup(aws, ctx)
    good_backup(aws, ctx, target="ledgerdb", run="r2")

    tick(aws, fleet, vault, GOOD_AT + 61 * M)
    opened = alerts(aws)

    assert [(kind, phase) for kind, phase, _ in opened] == [("vault", "open")]
    assert "OFF-SITE REPLICATION STALLED" in opened[0][2]
    held = {i.about_target: i.suppressed_by for i in aws.ledger.incidents.list_open() if i.kind == "offsite"}
    assert held == {"orders-0": "pipeline:bp-test#vault", "ledgerdb": "pipeline:bp-test#vault"}

    replicator(aws.session, aws.bucket, vault).replicate()
    tick(aws, fleet, vault, GOOD_AT + 66 * M)

    resolved = aws.alerts()
    assert [m["MessageAttributes"]["kind"]["Value"] for m in resolved] == ["vault"]
    assert "Caught up:   ledgerdb, orders-0" in resolved[0]["Message"]
    assert aws.ledger.incidents.list_open() == []


@pytest.mark.usefixtures("auditor")
def test_a_verification_whose_ledger_write_fails_is_completed_by_the_next_tick(
    aws, fleet, vault, ctx, monkeypatch: pytest.MonkeyPatch
) -> None:
    good_backup(aws, ctx)
    replicator(aws.session, aws.bucket, vault).replicate()
    real = TargetStates.record_offsite
    failures = iter([True])

    def flaky(self: TargetStates, *args: Any, **kwargs: Any) -> bool:
        if next(failures, False):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(TargetStates, "record_offsite", flaky)

    first = tick(aws, fleet, vault, GOOD_AT + 5 * M)
    assert first.offsite is not None
    assert first.offsite.errors  # said, and the watchdog still ticked
    assert copy_of(aws).state == "pending"  # not marked verified while the target does not know

    tick(aws, fleet, vault, GOOD_AT + 10 * M)

    assert copy_of(aws).state == "verified"
    state = aws.ledger.targets.get("orders-0")
    assert state is not None
    assert state.last_offsite_run_id == "r1"


def test_a_missing_backup_of_a_target_that_needs_copies_says_so(aws, auditor, fleet, vault, ctx) -> None:
    good_backup(aws, ctx, target="ledgerdb", run="r2")
    replicator(aws.session, aws.bucket, vault).replicate()
    tick(aws, fleet, vault, GOOD_AT + 5 * M)  # the copy verifies: the RPO counts from this backup

    tick(aws, fleet, vault, GOOD_AT + timedelta(hours=26, minutes=1))

    [missing] = [m for m in aws.alerts() if m["MessageAttributes"]["kind"]["Value"] == "rpo"]
    assert "ledgerdb" in missing["Subject"]
    assert "only once its off-site copy is verified" in missing["Message"]
