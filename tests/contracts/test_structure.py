"""The shape the codebase promises (docs/architecture.md): small modules, one home for each shared thing,
and the stack importing nothing from the Lambda package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_TREES = ("contracts", "agents", "functions", "tools", "stacks")
MODULE_LINES_MAX = 400


def runtime_modules() -> list[Path]:
    return sorted(path for tree in RUNTIME_TREES for path in (ROOT / tree).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def calls_of(path: Path, attribute: str) -> int:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attribute
    )


def test_no_runtime_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in runtime_modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES_MAX
    }
    assert long == {}


def test_the_stack_imports_nothing_from_the_lambda_package() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.startswith("backup_functions"))
        for path in (ROOT / "stacks").rglob("*.py")
    }
    assert {path: modules for path, modules in offending.items() if modules} == {}


def test_the_agent_imports_nothing_from_the_lambda_package() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.startswith("backup_functions"))
        for path in (ROOT / "agents").rglob("*.py")
    }
    assert {path: modules for path, modules in offending.items() if modules} == {}


def test_eventbridge_put_events_is_called_in_exactly_one_place() -> None:
    callers = [str(path.relative_to(ROOT)) for path in runtime_modules() if calls_of(path, "put_events")]
    assert callers == ["contracts/backup_contracts/eventbus.py"]


def test_credential_patterns_live_only_in_the_redaction_module() -> None:
    alternation = re.compile(r"password\|passwd")  # how every credential-name pattern starts
    holders = [str(path.relative_to(ROOT)) for path in runtime_modules() if alternation.search(path.read_text())]
    assert holders == ["contracts/backup_contracts/redaction.py"]


def test_every_module_says_what_it_is_for() -> None:
    undocumented = [
        str(path.relative_to(ROOT))
        for path in runtime_modules()
        if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is None
    ]
    assert undocumented == []
