"""Build the Lambda code asset without Docker, so the deployed Powertools/pydantic are the tested pins.

The asset directory holds the two first-party packages (``backup_contracts``, ``backup_functions``),
``fleet.json`` (the validated fleet) and, when ``bundle_dependencies`` is true, the wheels of
``requirements-lambda.txt`` installed by ``pip --platform manylinux2014_aarch64 --only-binary=:all:``
for the Lambda runtime's Python version. ``platform=LOCAL_PLATFORM`` builds the same asset with wheels for
the running interpreter instead, so a test can import every handler from it here (no ARM64 needed).

Everything lives under ``build/lambda/`` and is content-addressed: the dependency directory is keyed by
a hash of requirements-lambda.txt + Python version + platform (pip runs once per change), the asset directory
by a hash of everything it contains. Directories are built in a temporary sibling and renamed into
place, so concurrent synths (tests, ``cdk synth``) never see a half-written directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backup_contracts.fleet import Fleet

LOG = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
PLATFORM = "manylinux2014_aarch64"
LOCAL_PLATFORM = "local"  # wheels for the interpreter running the build (tests import the asset here)
FLEET_FILE_NAME = "fleet.json"
# First-party packages shipped in every function: (import name, directory that contains it).
SOURCE_PACKAGES: tuple[tuple[str, Path], ...] = (
    ("backup_contracts", REPO_ROOT / "contracts"),
    ("backup_functions", REPO_ROOT / "functions"),
)
STALE_ASSET_AGE_S = 3600.0
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache", ".pytest_cache")


class LambdaPackageError(RuntimeError):
    """The Lambda asset could not be built; the message says which step failed and how to fix it."""


@dataclass(frozen=True)
class LambdaPackage:
    """Where the built asset lives and what it contains."""

    asset_dir: Path
    dependencies_dir: Path | None


def _source_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            yield path


def _hash_tree(digest: Any, root: Path, label: str) -> None:
    for path in _source_files(root):
        digest.update(f"{label}/{path.relative_to(root).as_posix()}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")


def local_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _platform_tag(platform: str) -> str:
    """What the wheels are built for: the named pip platform, or the running interpreter's own."""
    if platform == LOCAL_PLATFORM:
        return f"{LOCAL_PLATFORM}-{sys.implementation.name}-{sysconfig.get_platform()}"
    return platform


def dependencies_key(requirements: Path, python_version: str, platform: str = PLATFORM) -> str:
    digest = hashlib.sha256()
    digest.update(requirements.read_bytes())
    digest.update(f"\0{python_version}\0{_platform_tag(platform)}".encode())
    return digest.hexdigest()[:16]


def _atomic_build(final: Path, build: Callable[[Path], None]) -> Path:
    """Build into a temporary sibling of ``final`` and rename it into place (first writer wins)."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(tmp)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # someone else did not win the race; a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def install_dependencies(
    requirements: Path, python_version: str, build_root: Path, *, platform: str = PLATFORM
) -> Path:
    """pip-install the Lambda requirements for ``platform`` (ARM64 Linux) into a cached directory, return it."""
    if not requirements.is_file():
        raise LambdaPackageError(f"{requirements}: not found. Fix: restore requirements-lambda.txt from git")
    if platform == LOCAL_PLATFORM and python_version != local_python_version():
        raise LambdaPackageError(
            f"a local-platform asset is built for the running Python {local_python_version()}, not"
            f" {python_version}. Fix: pass python_version=local_python_version()"
        )
    final = build_root / f"deps-py{python_version}-{dependencies_key(requirements, python_version, platform)}"
    # The same binary-only install either way; only the target interpreter differs.
    cross = (
        []
        if platform == LOCAL_PLATFORM
        else ["--platform", platform, "--implementation", "cp", "--python-version", python_version]
    )
    tag = _platform_tag(platform)

    def _pip(target: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(target),
            "-r",
            str(requirements),
            *cross,
            "--only-binary=:all:",
        ]
        LOG.info("installing Lambda dependencies for Python %s/%s into %s", python_version, tag, final)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LambdaPackageError(
                f"pip could not install {requirements.name} for Python {python_version} on {tag}"
                f" (exit {result.returncode}):\n{result.stderr.strip()}\n"
                "Fix: check network access to the package index and that every pin has a binary wheel"
                " for this platform"
            )

    return _atomic_build(final, _pip)


def _copy_tree(source: Path, destination: Path, *, link: bool) -> None:
    def _link_or_copy(src: str, dst: str) -> object:
        try:
            os.link(src, dst)
        except OSError:
            return shutil.copy2(src, dst)
        return dst

    shutil.copytree(source, destination, ignore=_IGNORED, copy_function=_link_or_copy if link else shutil.copy2)


def build_lambda_package(
    fleet: Fleet,
    *,
    python_version: str,
    platform: str = PLATFORM,
    bundle_dependencies: bool = True,
    build_root: Path | None = None,
    requirements: Path | None = None,
) -> LambdaPackage:
    """Stage the Lambda code (sources + fleet.json [+ dependencies for ``platform``]) and return where it is."""
    build_root = build_root or REPO_ROOT / "build" / "lambda"
    requirements = requirements or REPO_ROOT / "requirements-lambda.txt"
    deps = (
        install_dependencies(requirements, python_version, build_root, platform=platform)
        if bundle_dependencies
        else None
    )
    fleet_json = fleet.model_dump_json(indent=2).encode()

    digest = hashlib.sha256()
    for name, parent in SOURCE_PACKAGES:
        package_dir = parent / name
        if not (package_dir / "__init__.py").is_file():
            raise LambdaPackageError(f"{package_dir}: package not found. Fix: run from a complete checkout")
        _hash_tree(digest, package_dir, name)
    digest.update(b"fleet.json\0" + fleet_json)
    digest.update(f"\0deps={deps.name if deps else 'none'}".encode())
    final = build_root / f"asset-{digest.hexdigest()[:20]}"

    def _stage(staging: Path) -> None:
        if deps is not None:
            for entry in deps.iterdir():
                if entry.name == "bin":  # console scripts of the wheels; useless in Lambda
                    continue
                if entry.is_dir():
                    _copy_tree(entry, staging / entry.name, link=True)
                else:
                    shutil.copy2(entry, staging / entry.name)
        for name, parent in SOURCE_PACKAGES:
            _copy_tree(parent / name, staging / name, link=False)
        (staging / FLEET_FILE_NAME).write_bytes(fleet_json)

    asset_dir = _atomic_build(final, _stage)
    _prune_stale_assets(build_root, keep=asset_dir)
    return LambdaPackage(asset_dir=asset_dir, dependencies_dir=deps)


def _prune_stale_assets(build_root: Path, *, keep: Path, max_age_s: float = STALE_ASSET_AGE_S) -> None:
    """Remove asset directories of earlier source versions (older than an hour, so concurrent synths are safe)."""
    now = time.time()
    for entry in build_root.glob("asset-*"):
        if entry != keep and entry.is_dir() and now - entry.stat().st_mtime > max_age_s:
            shutil.rmtree(entry, ignore_errors=True)
