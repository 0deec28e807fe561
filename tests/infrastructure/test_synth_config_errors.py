"""A fleet with a mistake fails `python app.py` (what `cdk synth` runs) with a message naming file, entry and fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.infrastructure

REPO = Path(__file__).resolve().parents[2]


def _synth(fleet_file: Path, tmp_path: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **extra_env,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        # This is how the CDK CLI hands context (cdk.json + `-c fleet=...`) to the app.
        "CDK_CONTEXT_JSON": json.dumps({"fleet": str(fleet_file)}),
        "CDK_OUTDIR": str(tmp_path / "cdk.out"),
    }
    return subprocess.run(
        [sys.executable, str(REPO / "app.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "bad-fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def raw() -> dict[str, Any]:
    return yaml.safe_load((REPO / "fleet.yaml").read_text())


def _assert_fails_clearly(result: subprocess.CompletedProcess[str], fleet_file: Path, *expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(fleet_file) in result.stderr
    for text in expected:
        assert text in result.stderr
    assert not (fleet_file.parent / "cdk.out" / "manifest.json").exists()


def test_unknown_engine_fails_synth(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["agents"][0]["targets"][0]["engine"] = "postgress"
    fleet_file = _write(tmp_path, raw)
    _assert_fails_clearly(
        _synth(fleet_file, tmp_path),
        fleet_file,
        "targets[0] 'app-sqlite' > engine",
        "unknown engine 'postgress'",
        "Fix: use one of: postgresql",
    )


def test_bad_cron_fails_synth(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["agents"][0]["targets"][0]["schedule"] = "cron(0 25 * * *)"
    fleet_file = _write(tmp_path, raw)
    _assert_fails_clearly(
        _synth(fleet_file, tmp_path),
        fleet_file,
        "targets[0] 'app-sqlite' > schedule",
        "'cron(0 25 * * *)' is not a valid cron expression",
        "Fix: minute 0-59, hour 0-23",
    )


def test_duplicate_target_fails_synth(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["agents"][0]["targets"][1]["name"] = raw["agents"][0]["targets"][0]["name"]
    raw["agents"][0]["targets"][0].pop("restore_to", None)
    raw["agents"][0]["targets"][0].pop("drill", None)
    fleet_file = _write(tmp_path, raw)
    _assert_fails_clearly(_synth(fleet_file, tmp_path), fleet_file, "duplicate target name", "'app-sqlite'", "Fix:")


def test_rpo_shorter_than_schedule_interval_fails_synth(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["agents"][0]["targets"][2]["rpo"] = "2h"  # orders-pg runs every 6 hours
    fleet_file = _write(tmp_path, raw)
    _assert_fails_clearly(
        _synth(fleet_file, tmp_path), fleet_file, "targets[2] 'orders-pg'", "rpo 2h is shorter than", "Fix: raise rpo"
    )


def test_missing_fleet_file_fails_synth(tmp_path: Path) -> None:
    fleet_file = tmp_path / "nope.yaml"
    _assert_fails_clearly(_synth(fleet_file, tmp_path), fleet_file, "fleet file not found", "Fix:")


def test_drill_into_a_protected_target_fails_synth_with_a_fix(tmp_path: Path, raw: dict[str, Any]) -> None:
    app_sqlite, clone, orders = (raw["agents"][0]["targets"][i] for i in (0, 1, 2))
    clone["protected"] = True
    app_sqlite["drill"]["destination"] = "app-sqlite-clone"  # protected, and where app-sqlite is cloned to
    orders["drill"] = {"schedule": "rate(7 days)", "destination": "orders-pg"}  # into itself
    fleet_file = _write(tmp_path, raw)
    _assert_fails_clearly(
        _synth(fleet_file, tmp_path),
        fleet_file,
        "3 problem(s)",
        "targets[0] 'app-sqlite' > drill > destination: 'app-sqlite-clone' is a protected target",
        "'app-sqlite-clone' is where restores of 'app-sqlite' are cloned to",
        "targets[2] 'orders-pg' > drill > destination: 'orders-pg' is the drilled target itself",
        "Fix: declare a scratch target of engine postgresql (e.g. orders-pg-drill",
    )


def test_ledger_ttl_shorter_than_a_retention_fails_synth(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["pipeline"]["ledger_ttl_days"] = 100  # the standard class keeps monthly backups 400 days
    fleet_file = _write(tmp_path, raw)
    _assert_fails_clearly(
        _synth(fleet_file, tmp_path),
        fleet_file,
        "pipeline > ledger_ttl_days: 100 is shorter than the longest retention",
        "'standard' > monthly_days: 400",
        "Fix: set pipeline.ledger_ttl_days to at least 400",
    )


def test_a_huge_pipeline_timeout_fails_synth_naming_its_line(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["pipeline"]["job_deadline_minutes"] = 10**14  # would overflow the Lambdas' datetime arithmetic
    fleet_file = _write(tmp_path, raw)
    line = next(
        number
        for number, text in enumerate(fleet_file.read_text().splitlines(), start=1)
        if "job_deadline_minutes" in text
    )
    _assert_fails_clearly(
        _synth(fleet_file, tmp_path),
        fleet_file,
        f"{fleet_file}:{line}: pipeline > job_deadline_minutes: 100000000000000 is out of range",
        "Fix: use at most 10080",
    )


def test_a_duplicate_key_fails_synth_naming_both_lines(tmp_path: Path, raw: dict[str, Any]) -> None:
    fleet_file = _write(tmp_path, raw)
    text = fleet_file.read_text()
    fleet_file.write_text(text + "agents: []\n")
    first = next(n for n, t in enumerate(text.splitlines(), start=1) if t.startswith("agents:"))
    second = len(text.splitlines()) + 1
    _assert_fails_clearly(
        _synth(fleet_file, tmp_path),
        fleet_file,
        f"{fleet_file}:{second}: agents: key 'agents' is given twice, on line {first} and on line {second}",
    )


def test_a_vault_in_the_region_the_pipeline_deploys_into_fails_synth_with_a_fix(
    tmp_path: Path, raw: dict[str, Any]
) -> None:
    raw["pipeline"]["offsite"] = {"region": "eu-west-1", "account": "222222222222", "primary_account": "111111111111"}
    fleet_file = _write(tmp_path, raw)

    result = _synth(fleet_file, tmp_path, CDK_DEFAULT_REGION="eu-west-1")

    _assert_fails_clearly(result, fleet_file, "pipeline > offsite > region", "would not outlive a region", "Fix:")
