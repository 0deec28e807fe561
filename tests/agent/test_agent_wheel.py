"""The agent as a host owner installs it: the project's wheel (not an editable install) in a fresh venv.

The wheel is built from a copy of the distribution's sources (pyproject.toml, README, LICENSE and the
package roots, nothing else of the checkout), installed with its dependencies at the tested pins
(``requirements.txt`` as a constraints file, so the CDK pins constrain nothing and are not installed)
into a new venv in a temporary directory, and run from outside the checkout with no PYTHONPATH. It
then checks a host against the local pipeline's resources (``local_pipeline.resources.provision`` on
the moto server): config, the SQLite targets, the queue, the bus and the key.

Needs the package index (PyPI or the configured mirror): pip fetches the build backend and the
dependencies (from its cache after the first run). ~20 s warm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import yaml

from backup_contracts.fleet import Fleet, load_fleet
from local_pipeline.demo import DEMO_AGENT, UNREACHABLE_TARGET, default_fleet_file
from local_pipeline.resources import LocalResources, provision
from local_pipeline.sample_data import create_app_database, create_empty_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_ROOTS = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]
DISTRIBUTION_FILES = ("pyproject.toml", "README.md", "LICENSE")
# What a host (the agent) and an operator (backupctl) import; the Lambda package needs the [lambda]
# extra and local_pipeline the dev tools, so they are only checked for being complete in the wheel.
HOST_PACKAGES = ("backup_agent", "backup_contracts", "backupctl")
TIMEOUT_S = 300


@dataclass(frozen=True)
class WheelVenv:
    root: Path
    wheel: Path

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)


def outside_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points Python at the checkout or its venv."""
    own_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "AWS_"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != own_bin)
    return {**env, **extra}


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env or outside_env(), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


def must(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in DISTRIBUTION_FILES:
        shutil.copy2(REPO / name, source / name)
    for root in PACKAGE_ROOTS:
        shutil.copytree(REPO / root, source / root, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = work / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    must(run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)], cwd=work))
    [wheel] = dist.glob("backup_pipeline-*.whl")
    venv = work / "venv"
    must(run([sys.executable, "-m", "venv", str(venv)], cwd=work))
    install = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    must(run([*install, str(wheel), "--constraint", str(REPO / "requirements.txt")], cwd=work))
    return WheelVenv(venv, wheel)


@pytest.fixture
def berlin_fleet_file(tmp_path: Path) -> Path:
    """The demo fleet with its nightly target on Berlin time (loading it needs zone data)."""
    raw = yaml.safe_load(default_fleet_file().read_text(encoding="utf-8"))
    target = next(t for agent in raw["agents"] for t in agent["targets"] if t["schedule"].startswith("cron("))
    target["timezone"] = "Europe/Berlin"
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def local_pipeline(aws_env: dict[str, str], berlin_fleet_file: Path) -> tuple[Fleet, LocalResources]:
    """The stack's resources for the (Berlin) demo fleet on the freshly reset moto server."""
    fleet = load_fleet(berlin_fleet_file)
    return fleet, provision(fleet, boto3.Session(region_name=aws_env["AWS_DEFAULT_REGION"]))


def host_config(fleet: Fleet, resources: LocalResources, workdir: Path) -> Path:
    """demo-host's agent config with real SQLite databases (the deliberately unreachable target left out)."""
    agent = next(a for a in fleet.agents if a.name == DEMO_AGENT)
    targets = {}
    for index, target in enumerate(t for t in agent.targets if t.name != UNREACHABLE_TARGET):
        path = workdir / "data" / f"{target.name}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        create_empty_database(path) if index else create_app_database(path)
        targets[target.name] = {"engine": "sqlite", "path": str(path)}
    config = {
        "agent": DEMO_AGENT,
        "region": resources.region,
        "queue_url": resources.agent_queue_urls[DEMO_AGENT],
        "bus_name": resources.bus_name,
        "kms_key_id": resources.kms_key_arn,
        "bucket": resources.bucket,
        "state_dir": str(workdir / "state"),
        "targets": targets,
    }
    path = workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_dependency_of_the_wheel_is_pinned_in_requirements_txt() -> None:
    """The constraints the install below uses: each direct dependency at the version the tests ran."""
    pinned = {
        requirement_name(line)
        for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    declared = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["lambda"]]
    assert sorted({requirement_name(r) for r in declared} - pinned) == []


def test_the_wheel_holds_every_module_and_the_package_data(wheel_venv: WheelVenv, tmp_path: Path) -> None:
    source_modules = sorted(
        ".".join(path.relative_to(REPO / root).with_suffix("").parts)
        for root in PACKAGE_ROOTS
        for path in (REPO / root).rglob("*.py")
        if "__pycache__" not in path.parts
    )
    listing = (
        "import importlib.metadata as m, json, sys; d = m.distribution('backup-pipeline');"
        "print(json.dumps({'files': [str(f) for f in d.files], 'site': sys.prefix}))"
    )
    installed = json.loads(must(run([wheel_venv.bin("python"), "-c", listing], cwd=tmp_path)))
    files = installed["files"]
    wheel_modules = sorted(f.removesuffix(".py").replace("/", ".") for f in files if f.endswith(".py"))

    assert wheel_modules == source_modules
    assert "backup_agent/backup-agent.service" in files  # docs/agent.md copies it from the package
    assert "local_pipeline/demo_fleet.yaml" in files
    assert installed["site"] == str(wheel_venv.root)


def test_the_host_packages_import_from_the_installed_wheel(wheel_venv: WheelVenv, tmp_path: Path) -> None:
    """Every module the agent and backupctl consist of imports in the venv, from its site-packages."""
    script = (
        "import importlib, json, pkgutil, sys\n"
        "failed, files = {}, {}\n"
        f"for package in {HOST_PACKAGES!r}:\n"
        "    root = importlib.import_module(package)\n"
        "    files[package] = root.__file__\n"
        "    for info in pkgutil.walk_packages(root.__path__, prefix=package + '.'):\n"
        "        try:\n"
        "            importlib.import_module(info.name)\n"
        "        except Exception as exc:\n"
        "            failed[info.name] = repr(exc)\n"
        "print(json.dumps({'failed': failed, 'files': files}))\n"
    )
    report = json.loads(must(run([wheel_venv.bin("python"), "-c", script], cwd=tmp_path)))

    assert report["failed"] == {}
    site = wheel_venv.root / "lib"
    assert all(Path(file).is_relative_to(site) for file in report["files"].values()), report["files"]


def test_backup_agent_version_is_the_distributions(wheel_venv: WheelVenv, tmp_path: Path) -> None:
    out = must(run([wheel_venv.bin("backup-agent"), "--version"], cwd=tmp_path))

    assert out.strip() == f"backup-agent {PYPROJECT['project']['version']}"  # not 0.0.0+source


def test_backup_agent_check_from_the_wheel_finds_the_host_healthy(
    wheel_venv: WheelVenv, local_pipeline: tuple[Fleet, LocalResources], aws_env: dict[str, str], tmp_path: Path
) -> None:
    fleet, resources = local_pipeline
    config = host_config(fleet, resources, tmp_path)

    result = run(
        [wheel_venv.bin("backup-agent"), "--config", str(config), "check"], cwd=tmp_path, env=outside_env(**aws_env)
    )

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "[FAIL]" not in out
    assert f"[  ok] config: agent {DEMO_AGENT}, 3 target(s)" in out
    for target in ("app-sqlite", "app-sqlite-clone", "app-sqlite-drill"):
        assert f"[  ok] target {target} (sqlite)" in out
    assert "[  ok] AWS credentials (sts get-caller-identity)" in out
    assert "[  ok] job queue attributes (visibility" in out
    assert "DLQ yes" in out
    assert "[  ok] event bus" in out
    assert "[  ok] KMS key" in out
    assert "nothing was uploaded" in out
    assert boto3.client("s3").list_objects_v2(Bucket=resources.bucket).get("KeyCount", 0) == 0


def test_backupctl_from_the_wheel_reads_a_berlin_fleet_with_no_system_zone_database(
    wheel_venv: WheelVenv,
    local_pipeline: tuple[Fleet, LocalResources],  # the ledger table backupctl reads
    berlin_fleet_file: Path,
    aws_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The wheel depends on tzdata: the fleet's zones resolve where the host has no /usr/share/zoneinfo."""
    no_zones = tmp_path / "no-zoneinfo"
    no_zones.mkdir()
    env = outside_env(**aws_env, PYTHONTZPATH=str(no_zones))
    argv = [wheel_venv.bin("backupctl"), "--fleet", str(berlin_fleet_file), "--json", "status"]

    result = run(argv, cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(result.stdout)
    assert {row["target"] for row in rows} >= {"app-sqlite", "nas-sqlite"}
    # and the zones really came from the tzdata package, not from a system database
    probe = "import zoneinfo, tzdata; zoneinfo.ZoneInfo('Europe/Berlin'); print(zoneinfo.TZPATH, tzdata.__file__)"
    out = must(run([wheel_venv.bin("python"), "-c", probe], cwd=tmp_path, env=env))
    assert str(no_zones) in out
    assert str(wheel_venv.root) in out
