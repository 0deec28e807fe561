"""The Lambda asset is built without Docker: our packages + fleet.json (+ pinned wheels for ARM64 Linux)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from backup_contracts.fleet import Fleet, load_fleet
from stacks.functions import RUNTIME, RUNTIME_PYTHON_VERSION
from stacks.lambda_package import (
    LOCAL_PLATFORM,
    LambdaPackageError,
    build_lambda_package,
    dependencies_key,
    local_python_version,
)

pytestmark = pytest.mark.infrastructure

REPO = Path(__file__).resolve().parents[2]
ELF_MACHINE_AARCH64 = 183


def test_asset_contains_both_packages_and_the_validated_fleet(tmp_path: Path, fleet: Fleet) -> None:
    package = build_lambda_package(fleet, python_version="3.14", bundle_dependencies=False, build_root=tmp_path)
    assert (package.asset_dir / "backup_contracts" / "fleet.py").is_file()
    assert (package.asset_dir / "backup_functions" / "settings.py").is_file()
    assert load_fleet(package.asset_dir / "fleet.json") == fleet
    assert not list(package.asset_dir.rglob("__pycache__"))
    assert package.dependencies_dir is None


def test_asset_is_content_addressed(tmp_path: Path, fleet: Fleet, fleet_with: Callable[..., Fleet]) -> None:
    first = build_lambda_package(fleet, python_version="3.14", bundle_dependencies=False, build_root=tmp_path)
    again = build_lambda_package(fleet, python_version="3.14", bundle_dependencies=False, build_root=tmp_path)
    changed = build_lambda_package(
        fleet_with(pipeline={"watchdog_interval_minutes": 7}),
        python_version="3.14",
        bundle_dependencies=False,
        build_root=tmp_path,
    )
    assert first.asset_dir == again.asset_dir
    assert changed.asset_dir != first.asset_dir


def test_dependency_cache_is_keyed_by_requirements_and_runtime(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydantic==2.14.3\n")
    key = dependencies_key(requirements, "3.14")
    assert dependencies_key(requirements, "3.13") != key
    assert dependencies_key(requirements, "3.14", LOCAL_PLATFORM) != key
    requirements.write_text("pydantic==2.14.2\n")
    assert dependencies_key(requirements, "3.14") != key


def test_a_local_platform_asset_is_built_for_the_running_python_only(tmp_path: Path, fleet: Fleet) -> None:
    """Wheels for this machine can only be for this interpreter (the import test runs them here)."""
    other = "3.14" if local_python_version() != "3.14" else "3.13"
    with pytest.raises(LambdaPackageError, match="running Python"):
        build_lambda_package(fleet, python_version=other, platform=LOCAL_PLATFORM, build_root=tmp_path)


def test_runtime_and_wheel_python_version_agree() -> None:
    assert RUNTIME.name == f"python{RUNTIME_PYTHON_VERSION}"


@pytest.mark.slow
def test_bundled_dependencies_are_the_pinned_arm64_wheels(fleet: Fleet) -> None:
    """The real bundle (build/lambda cache, shared with `cdk synth`; pip runs only when it is cold).

    pydantic_core must be an aarch64 build for the runtime's Python, and the pins must be the tested ones.
    """
    package = build_lambda_package(fleet, python_version=RUNTIME_PYTHON_VERSION)
    pins = dict(
        line.split("==")
        for line in (REPO / "requirements-lambda.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert (package.asset_dir / f"pydantic-{pins['pydantic']}.dist-info").is_dir()
    assert (package.asset_dir / f"aws_lambda_powertools-{pins['aws-lambda-powertools[tracer]']}.dist-info").is_dir()
    assert (package.asset_dir / "aws_xray_sdk").is_dir()  # the [tracer] extra: the functions run with tracing on
    assert (package.asset_dir / f"tzdata-{pins['tzdata']}.dist-info").is_dir()  # zoneinfo without a system database
    [core] = (package.asset_dir / "pydantic_core").glob("_pydantic_core.cpython-*.so")
    assert core.name.startswith(f"_pydantic_core.cpython-{RUNTIME_PYTHON_VERSION.replace('.', '')}-aarch64")
    header = core.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert struct.unpack_from("<H", header, 18)[0] == ELF_MACHINE_AARCH64
    assert (package.asset_dir / "backup_functions").is_dir()
    assert (package.asset_dir / "fleet.json").is_file()
