"""The stack's access rules as a matrix evaluated by @cloud-copilot/iam-simulate (see access_matrix/__init__.py).

One test per row of ``access_matrix.rows.ROWS``; rows with a known policy gap are strict xfails naming the
gap. The mutation tests prove the harness can fail: a weakened policy changes the decision of a row; the
coverage tests make a new role or resource policy of the template fail until rows evaluate it. The harness
itself (resolver, evaluator wiring) is tested in test_access_matrix_harness.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from access_matrix.evaluator import Evaluator, EvaluatorUnavailableError, Verdict
from access_matrix.matrix import AccessMatrix, decision_of, explain
from access_matrix.offsite_rows import OFFSITE_ROWS, SAME_ACCOUNT_VAULT_ROWS
from access_matrix.rows import ROWS, Decision, Row
from access_matrix.template import Json

pytestmark = pytest.mark.infrastructure

ROWS_BY_NAME = {row.name: row for row in ROWS}
ALLOWED, DENIED = Decision.ALLOWED, Decision.DENIED


def _param(row: Row) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=row.gap)] if row.gap else []
    return pytest.param(row, id=row.name, marks=marks)


@pytest.fixture(scope="session")
def evaluator() -> Evaluator:
    try:
        return Evaluator()
    except EvaluatorUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def access_matrix(synthesized: Any, evaluator: Evaluator) -> AccessMatrix:
    return AccessMatrix.of(synthesized, evaluator)


@pytest.fixture(scope="session")
def verdicts(access_matrix: AccessMatrix) -> dict[str, Verdict]:
    """Every row evaluated once, in one node process."""
    return access_matrix.evaluate(ROWS)


@pytest.mark.parametrize("row", [_param(row) for row in ROWS])
def test_access_matrix(row: Row, access_matrix: AccessMatrix, verdicts: dict[str, Verdict]) -> None:
    verdict = verdicts[row.name]
    request = access_matrix.request(row)
    assert not verdict.ignored_context_keys, (
        f"{row.name}: the evaluator ignores {list(verdict.ignored_context_keys)} for {row.action}; the row would"
        " test another request than the one written"
    )
    assert decision_of(verdict) == row.expected, explain(row, request, verdict)


DECIDED = [pytest.param(row, id=row.name) for row in ROWS if row.decided_by]


@pytest.mark.parametrize("row", DECIDED)
def test_a_row_that_names_its_deciding_statement_flips_without_it(
    row: Row, access_matrix: AccessMatrix, verdicts: dict[str, Verdict]
) -> None:
    # e.g. an agent's overwrite must be denied by the overwrite Deny, not by an SSE Deny that happens to match
    assert row.decided_by in verdicts[row.name].deciding_statements(), explain(
        row, access_matrix.request(row), verdicts[row.name]
    )
    mutated = access_matrix.with_stack(access_matrix.resolved.without_statement(row.decided_by))
    (verdict,) = mutated.evaluate([row]).values()
    assert decision_of(verdict) != row.expected, explain(row, mutated.request(row), verdict)


# --- the harness can fail ------------------------------------------------------------------------------------
def _drop(_: Json) -> None:
    return None


def _if_exists_without_null(statement: Json) -> Json:
    """The SSE Deny as it was before the fix: ``StringNotEqualsIfExists``, no ``Null`` (true without the header)."""
    return {**statement, "Condition": {"StringNotEqualsIfExists": statement["Condition"]["StringNotEquals"]}}


@dataclass(frozen=True)
class Mutation:
    """Change (by default drop) the statement ``sid``: the row it decides must flip from ``before`` to ``after``."""

    sid: str
    row: str
    before: Decision
    after: Decision
    change: Callable[[Json], Json | None] = _drop


MUTATIONS = [
    pytest.param(Mutation("WriteOwnPrefixOnly", "agent-puts-manifest", ALLOWED, DENIED), id="agent-loses-its-prefix"),
    pytest.param(Mutation("DenyPutWithAnotherKmsKey", "agent-puts-other-key", DENIED, ALLOWED), id="bucket-loses-deny"),
    pytest.param(
        Mutation("AllowCloudWatchAlarmsToUseTheKeyForTheAlertTopic", "alarm-kms-data-key", ALLOWED, DENIED),
        id="key-policy-loses-alarm-grant",
    ),
    pytest.param(
        Mutation("InvokeApprovalsUrl", "approver-calls-approvals-url", ALLOWED, DENIED),
        id="callers-policy-loses-the-url",
    ),
    # The SSE Denies reverted to StringNotEqualsIfExists without Null (issue 14): every multipart part is denied.
    pytest.param(
        Mutation("DenyPutWithoutKmsEncryption", "agent-uploads-part", ALLOWED, DENIED, _if_exists_without_null),
        id="sse-deny-reverted-denies-parts",
    ),
    pytest.param(
        Mutation("DenyPutWithAnotherKmsKey", "agent-completes-upload", ALLOWED, DENIED, _if_exists_without_null),
        id="key-deny-reverted-denies-completion",
    ),
]


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_weakened_policy_changes_the_decision_of_a_row(
    access_matrix: AccessMatrix, verdicts: dict[str, Verdict], mutation: Mutation
) -> None:
    # Given a row the synthesized policies decide one way
    row = ROWS_BY_NAME[mutation.row]
    assert decision_of(verdicts[row.name]) == mutation.before
    # When the statement that decides it is dropped or changed in the policies (in memory)
    mutated = access_matrix.with_stack(access_matrix.resolved.with_statement(mutation.sid, mutation.change))
    # Then the evaluator reaches the opposite decision
    (verdict,) = mutated.evaluate([row]).values()
    assert decision_of(verdict) == mutation.after, explain(row, mutated.request(row), verdict)


def test_a_mutation_naming_no_statement_is_refused(access_matrix: AccessMatrix) -> None:
    with pytest.raises(KeyError, match="no statement with Sid 'NoSuchStatement'"):
        access_matrix.resolved.without_statement("NoSuchStatement")


# --- every role and every resource policy of the template is evaluated ------------------------------------
def test_every_role_of_the_template_is_a_principal_of_some_row(access_matrix: AccessMatrix) -> None:
    role_ids = access_matrix.bindings.role_ids
    bound = set(role_ids.values())
    used = {role_ids[row.principal] for row in ROWS if row.principal in role_ids}
    assert set(access_matrix.resolved.roles) == bound == used


def test_every_resource_policy_of_the_template_is_evaluated_by_some_row(access_matrix: AccessMatrix) -> None:
    evaluated = {access_matrix.resolved.policy_holder(access_matrix.request(row).resource) for row in ROWS}
    unevaluated = set(access_matrix.resolved.resource_policies) - evaluated
    assert unevaluated == set(), f"resource policies no row evaluates: {sorted(unevaluated)}"


# --- docs/access.md lists every row, and only rows ---------------------------------------------------------
ACCESS_DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"
ROW_NAME = re.compile(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`")
NOT_ROWS = {
    "sse-deny-reverted-denies-parts",
    "key-deny-reverted-denies-completion",
    "backup-pipeline-agent",
}  # test ids, tag


def test_docs_access_names_every_row_of_the_matrix_and_no_other() -> None:
    named = set(ROW_NAME.findall(ACCESS_DOC.read_text(encoding="utf-8"))) - NOT_ROWS
    every_row = {row.name for row in (*ROWS, *OFFSITE_ROWS, *SAME_ACCOUNT_VAULT_ROWS)}  # the vault's rows too
    assert named - every_row == set(), "docs/access.md names rows that do not exist"
    assert every_row - named == set(), "rows that docs/access.md does not list"
