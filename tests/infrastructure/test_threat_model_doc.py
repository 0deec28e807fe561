"""docs/threat-model.md links each guarantee to what proves it; every link must point at something real.

A row it names must be a row of the access matrix, and a test it names (``tests/<file>.py::test_name``)
must exist in that file, so renaming or deleting the proof of a promise fails here until the page says
what proves it now.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from access_matrix.offsite_rows import OFFSITE_ROWS, SAME_ACCOUNT_VAULT_ROWS
from access_matrix.rows import ROWS as PIPELINE_ROWS

pytestmark = pytest.mark.infrastructure

REPO = Path(__file__).resolve().parents[2]
THREAT_MODEL = REPO / "docs" / "threat-model.md"
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")
ROW_REFERENCE = re.compile(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`")
NOT_ROWS = frozenset()  # backticked hyphenated words on the page that are not row names
ROWS = (*PIPELINE_ROWS, *OFFSITE_ROWS, *SAME_ACCOUNT_VAULT_ROWS)  # the off-site vault's rows too


def _page() -> str:
    return THREAT_MODEL.read_text(encoding="utf-8")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_row_the_threat_model_names_is_a_row_of_the_access_matrix() -> None:
    named = set(ROW_REFERENCE.findall(_page())) - NOT_ROWS
    assert named, "the threat model names no access-matrix row"
    unknown = named - {row.name for row in ROWS}
    assert unknown == set(), f"docs/threat-model.md names rows that do not exist: {sorted(unknown)}"


def test_every_test_the_threat_model_names_exists() -> None:
    references = TEST_REFERENCE.findall(_page())
    assert len(references) >= 20, "the threat model links its guarantees to tests"
    missing = [
        f"{file}::{name}"
        for file, name in references
        if not (REPO / file).is_file() or name not in _tests_in(REPO / file)
    ]
    assert missing == [], f"docs/threat-model.md names tests that do not exist: {missing}"


def test_no_row_the_threat_model_names_expects_the_opposite_of_a_cannot() -> None:
    # every row on the page under "cannot" (or a "may not") must be a Denied row, and vice versa for the few
    # Allowed ones it names as what still works: the page must not cite an Allowed row as proof of a denial
    allowed_on_purpose = {"approver-calls-approvals-url"}
    by_name = {row.name: row for row in ROWS}
    named = set(ROW_REFERENCE.findall(_page())) - NOT_ROWS
    wrong = sorted(
        name
        for name in named
        if name in by_name and (by_name[name].expected.value == "Allowed") != (name in allowed_on_purpose)
    )
    assert wrong == [], f"rows cited as proof of something a principal cannot do, but Allowed (or vice versa): {wrong}"
