"""What a Lambda container would import, run in a clean interpreter by ``test_lambda_asset.py``.

Started as ``python -I -S lambda_asset_probe.py ASSET MODE [ARG]`` with the asset directory as working
directory: ``-S`` leaves out every site-packages directory and ``-I`` ignores PYTHONPATH, the user site
and the script's own directory, so only the standard library is importable until the probe puts the
asset first on ``sys.path`` (as Lambda does with ``/var/task``). No socket can connect. The test hides
the system zone database (``PYTHONTZPATH`` = an empty directory), as on a Lambda image without one.

Modes (one JSON report on stdout; the test asserts on it):

- ``handler MODULE.ATTR``: import the handler, and build its runtime from the environment and the
  asset's ``fleet.json`` (boto3 clients are created; nothing is called);
- ``imports``: import every module of the first-party packages, and resolve every ``import`` statement
  in them (module level or inside a function; not ``if TYPE_CHECKING:`` blocks);
- ``zones``: evaluate a local-time schedule with the zone data the asset bundles.

Only the standard library and the asset may be used here.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import pkgutil
import socket
import sys
import sysconfig
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIRST_PARTY = ("backup_contracts", "backup_functions")
# Test and build tooling that must never be needed at run time.
FORBIDDEN = ("moto", "pytest", "local_pipeline", "aws_cdk", "constructs", "stacks", "backup_agent", "backupctl")


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError("the asset probe opens no connection")


socket.socket.connect = _refuse  # type: ignore[method-assign]
socket.socket.connect_ex = _refuse  # type: ignore[method-assign]
socket.create_connection = _refuse


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _zone_error(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return _error(exc)
    return None


def _file_of(name: str) -> str | None:
    module = sys.modules.get(name)
    return getattr(module, "__file__", None) if module else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> set[str]:
    """Absolute module names imported anywhere in ``tree`` except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolves(name: str) -> str | None:
    try:
        return None if importlib.util.find_spec(name) is not None else "not found"
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return _error(exc)


def probe_handler(spec: str) -> dict[str, Any]:
    module_name, _, attribute = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        handler = getattr(module, attribute)
        module.runtime.get()  # settings from the environment, the fleet from fleet.json, boto3 clients
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return {"error": _error(exc)}
    return {"error": None, "callable": callable(handler), "module_file": module.__file__}


def probe_imports(asset: Path) -> dict[str, Any]:
    modules: dict[str, str | None] = {}
    statements: set[str] = set()
    for package in FIRST_PARTY:
        root = asset / package
        for path in sorted(root.rglob("*.py")):
            statements |= _imports(ast.parse(path.read_text(encoding="utf-8")))
        names = [package] + [info.name for info in pkgutil.walk_packages([str(root)], prefix=f"{package}.")]
        for name in names:
            try:
                importlib.import_module(name)
                modules[name] = None
            except Exception as exc:  # noqa: BLE001 - reported to the test
                modules[name] = _error(exc)
    unresolved = {name: problem for name in sorted(statements) if (problem := _resolves(name)) is not None}
    return {"modules": modules, "unresolved_imports": unresolved}


def probe_zones() -> dict[str, Any]:
    from backup_contracts.schedule import Schedule

    schedule = Schedule("cron(30 2 * * *)", "Europe/Berlin")
    winter = next(schedule.slots_after(datetime(2026, 1, 10, 12, tzinfo=UTC)))
    summer = next(schedule.slots_after(datetime(2026, 7, 10, 12, tzinfo=UTC)))
    return {"winter": winter.isoformat(), "summer": summer.isoformat()}


def main() -> int:
    asset = Path(sys.argv[1]).resolve()
    mode = sys.argv[2]
    report: dict[str, Any] = {
        "tzpath": list(zoneinfo.TZPATH),
        "zone_before_asset": _zone_error("UTC"),  # the system database really is hidden
        "stdlib": sysconfig.get_paths()["stdlib"],
    }
    sys.path.insert(0, str(asset))
    importlib.invalidate_caches()
    if mode == "handler":
        report["handler"] = probe_handler(sys.argv[3])
    elif mode == "imports":
        report |= probe_imports(asset)
    elif mode == "zones":
        report["zones"] = probe_zones()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    report["sys_path"] = list(sys.path)
    report["tzdata_file"] = _file_of("tzdata")
    report["xray_sdk_file"] = _file_of("aws_xray_sdk")
    report["forbidden_loaded"] = sorted(
        name for name in sys.modules if name.split(".", 1)[0] in FORBIDDEN or name.startswith("_pytest")
    )
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
