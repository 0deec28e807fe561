"""A command target's verify_command in the real pipeline (moto server): only a stream it accepts is stored."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import boto3
import pytest

from backup_agent.config import parse_config
from backup_agent.engines import build_engine
from backup_agent.events import EventBridgeSink
from backup_agent.pipeline import BackupRun, RunOutcome
from backup_agent.secrets import SecretResolver

from .conftest import REGION, Stack, config_yaml, make_job

pytestmark = pytest.mark.integration

DUMP = gzip.compress(os.urandom(2 * 1024 * 1024), compresslevel=1)


def _backup(stack: Stack, tmp_path: Path, dump: bytes) -> RunOutcome:
    source = tmp_path / "dump.gz"
    source.write_bytes(dump)
    target = {
        "engine": "command",
        "dump_command": ["cat", str(source)],
        "restore_command": ["gzip", "-d"],
        "verify_command": ["gzip", "-t"],
        "extension": "gz",
    }
    config = parse_config(config_yaml(stack, tmp_path / "state", targets={"app": target}))
    engine = build_engine("app", config.targets["app"], SecretResolver())
    s3 = boto3.client("s3", region_name=REGION)
    return BackupRun(make_job(stack), engine, config, s3=s3, events=EventBridgeSink(stack.events, stack.bus)).execute()


def test_a_stream_the_verify_command_rejects_fails_at_verify_and_stores_nothing(stack: Stack, tmp_path: Path) -> None:
    outcome = _backup(stack, tmp_path, DUMP[: len(DUMP) - 1000])  # exit 0, but cut short

    assert not outcome.ok
    assert outcome.event.stage == "verify"
    assert "verify_command 'gzip' rejected the dump: it exited with status 1" in outcome.event.error
    assert "unexpected end of file" in outcome.event.error
    assert stack.objects() == []
    assert stack.uploads() == []


def test_a_stream_the_verify_command_accepts_is_stored_with_the_fact(stack: Stack, tmp_path: Path) -> None:
    outcome = _backup(stack, tmp_path, DUMP)

    assert outcome.ok, outcome.event
    assert outcome.manifest["validator"] == {"bytes": len(DUMP), "verified_by": "gzip"}
    assert outcome.event.bytes_in == len(DUMP)
    assert [key for key in stack.objects() if not key.endswith(".manifest.json")] == [outcome.event.key]
