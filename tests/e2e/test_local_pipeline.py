"""The first working slice, end to end, on the local pipeline: dispatcher → real agent process →
SSE-KMS S3 → bus → rule → SQS → audit → ledger; then the watchdog and a restore round trip."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from boto3.dynamodb.conditions import Key

from backup_contracts import ledger as keys
from backup_contracts.fleet import load_fleet
from local_pipeline.demo import SOURCE_TARGET, UNREACHABLE_TARGET, Demo, DemoWorld, default_fleet_file
from local_pipeline.moto_server import moto_server
from local_pipeline.resources import provision
from local_pipeline.runner import LocalPipeline
from local_pipeline.verify import decompress, sqlite_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    fleet_file = default_fleet_file()
    fleet = load_fleet(fleet_file)
    with moto_server() as endpoint:
        resources = provision(fleet, endpoint.session())
        world = DemoWorld(tmp_path, fleet, fleet_file, resources, LocalPipeline(endpoint, resources, fleet_file))
        lines: list[str] = []
        yield Demo(world, lines.append)


def _runs(demo: Demo, target: str) -> list[dict[str, object]]:
    table = demo.world.pipeline.session.resource("dynamodb").Table(demo.world.resources.ledger_table)
    condition = Key(keys.PK).eq(keys.target_pk(target)) & Key(keys.SK).begins_with(keys.RUN_SK_PREFIX)
    return table.query(KeyConditionExpression=condition)["Items"]


def test_one_dispatch_gives_one_verified_sse_kms_backup_and_one_ledger_run(demo: Demo, tmp_path: Path) -> None:
    demo.seed()
    demo.backup_cycle()

    runs = _runs(demo, SOURCE_TARGET)
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["state"] == "succeeded"
    assert run["sk"] == keys.run_sk(keys.parse_iso(str(run["started_at"])), str(run["run_id"]))
    assert keys.parse_iso(str(run["started_at"])) <= keys.parse_iso(str(run["finished_at"]))

    s3 = demo.world.pipeline.session.client("s3")
    bucket, key = demo.world.resources.bucket, str(run["key"])
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(demo.world.resources.kms_key_arn.rsplit("/", 1)[-1])
    stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == run["sha256"]
    (tmp_path / "backup.zst").write_bytes(stored)
    decompress(tmp_path / "backup.zst", tmp_path / "restored.db")
    assert sqlite_rows(tmp_path / "restored.db") == sqlite_rows(demo.world.database_paths[SOURCE_TARGET])


def test_the_unreachable_target_fails_loudly_and_never_becomes_a_backup(demo: Demo) -> None:
    demo.seed()
    demo.backup_cycle()

    runs = _runs(demo, UNREACHABLE_TARGET)
    assert [run["state"] for run in runs] == ["failed"]
    listed = demo.world.pipeline.session.client("s3").list_objects_v2(
        Bucket=demo.world.resources.bucket, Prefix=f"agents/demo-host/{UNREACHABLE_TARGET}/"
    )
    assert listed.get("KeyCount", 0) == 0
    alerts = demo.world.pipeline.alerts()
    assert [a for a in alerts if UNREACHABLE_TARGET in a["subject"]], alerts


def test_the_whole_demo_runs_green(tmp_path: Path) -> None:
    from local_pipeline.demo import run_demo

    lines: list[str] = []
    world = run_demo(tmp_path, out=lines.append)
    assert world.backup_key is not None
    assert any(UNREACHABLE_TARGET in alert["subject"] for alert in world.alerts)
    # the off-site column goes from pending to ok, and the weekly drill restored the vault's copy
    text = "\n".join(lines)
    pending, verified = text.index("the off-site copy is pending"), text.index("off-site ok")
    assert "OFF-SITE" in text[pending:verified]
    assert f"{SOURCE_TARGET} " in text[pending:verified]
    assert "pending" in text[pending:verified].split(f"\n{SOURCE_TARGET} ", 1)[1].splitlines()[0]
    assert " ok " in text[verified:].split(f"\n{SOURCE_TARGET} ", 1)[1].splitlines()[0]
    assert world.resources.vault is not None
    assert f"{SOURCE_TARGET}: drill ok from s3://{world.resources.vault.bucket}," in text
