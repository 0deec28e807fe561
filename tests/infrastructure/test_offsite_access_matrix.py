"""The off-site vault's access rules as a matrix (access_matrix/offsite_rows.py), evaluated by iam-simulate.

``OFFSITE_ROWS`` run against the pipeline stack of a fleet whose vault lives in another account, with the vault
stack's bucket and key policies as the resource policies of the vault's ARNs: a pipeline role's request on
the vault is cross-account, so both its identity policy and the vault's policy must allow it, and the vault's
Denies hold whatever the primary's own policies say. ``SAME_ACCOUNT_VAULT_ROWS`` run against a vault in the
pipeline's own account. The mutation tests show the Denies are what stop a primary administrator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from access_matrix.evaluator import Evaluator, EvaluatorUnavailableError, Verdict
from access_matrix.matrix import AccessMatrix, decision_of, explain, resolve_vault
from access_matrix.offsite_rows import (
    ADMIN,
    DENY_DELETING,
    DENY_RECONFIGURING,
    DESTRUCTIVE,
    OFFSITE_ROWS,
    PRIMARY_PRINCIPALS,
    SAME_ACCOUNT_VAULT_ROWS,
)
from access_matrix.rows import ROWS, Decision, Row
from access_matrix.template import Json
from conftest import OFFSITE, PRIMARY_ACCOUNT, vault_alone

from backup_contracts.fleet import Fleet

pytestmark = pytest.mark.infrastructure

ALLOWED, DENIED = Decision.ALLOWED, Decision.DENIED
BY_NAME = {row.name: row for row in (*OFFSITE_ROWS, *SAME_ACCOUNT_VAULT_ROWS)}


def _param(row: Row) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=row.gap)] if row.gap else []
    return pytest.param(row, id=row.name, marks=marks)


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    try:
        return Evaluator()
    except EvaluatorUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def offsite_matrix(offsite_synthesized: Any, evaluator: Evaluator) -> AccessMatrix:
    return AccessMatrix.of(offsite_synthesized, evaluator, vault=offsite_synthesized.vault)


@pytest.fixture(scope="module")
def matrix(offsite_matrix: AccessMatrix) -> AccessMatrix:
    return offsite_matrix


@pytest.fixture(scope="module")
def offsite_verdicts(offsite_matrix: AccessMatrix) -> dict[str, Verdict]:
    return offsite_matrix.evaluate(OFFSITE_ROWS)


@pytest.fixture(scope="module")
def same_account_matrix(fleet_with: Callable[..., Fleet], evaluator: Evaluator) -> AccessMatrix:
    fleet = fleet_with(pipeline={"offsite": {**OFFSITE, "account": PRIMARY_ACCOUNT}})
    return AccessMatrix.of_vault(vault_alone(fleet), evaluator)


@pytest.fixture(scope="module")
def same_account_verdicts(same_account_matrix: AccessMatrix) -> dict[str, Verdict]:
    return same_account_matrix.evaluate(SAME_ACCOUNT_VAULT_ROWS)


def _check(row: Row, matrix: AccessMatrix, verdict: Verdict) -> None:
    assert not verdict.ignored_context_keys, (
        f"{row.name}: the evaluator ignores {list(verdict.ignored_context_keys)} for {row.action}; the row would"
        " test another request than the one written"
    )
    assert decision_of(verdict) == row.expected, explain(row, matrix.request(row), verdict)


@pytest.mark.parametrize("row", [_param(row) for row in OFFSITE_ROWS])
def test_offsite_access_matrix(row: Row, offsite_matrix: AccessMatrix, offsite_verdicts: dict[str, Verdict]) -> None:
    _check(row, offsite_matrix, offsite_verdicts[row.name])


@pytest.mark.parametrize("row", [_param(row) for row in SAME_ACCOUNT_VAULT_ROWS])
def test_same_account_vault_access_matrix(
    row: Row, same_account_matrix: AccessMatrix, same_account_verdicts: dict[str, Verdict]
) -> None:
    _check(row, same_account_matrix, same_account_verdicts[row.name])


DECIDED = [pytest.param(row, id=row.name) for row in SAME_ACCOUNT_VAULT_ROWS if row.decided_by]


@pytest.mark.parametrize("row", DECIDED)
def test_a_same_account_denial_flips_without_the_vault_statement_that_decides_it(
    row: Row, same_account_matrix: AccessMatrix, same_account_verdicts: dict[str, Verdict]
) -> None:
    # within one account the administrator's own s3:*/kms:* would allow it: only the vault's Deny stops it
    assert row.decided_by in same_account_verdicts[row.name].deciding_statements(), explain(
        row, same_account_matrix.request(row), same_account_verdicts[row.name]
    )
    mutated = same_account_matrix.with_stack(same_account_matrix.resolved.without_statement(str(row.decided_by)))
    (verdict,) = mutated.evaluate([row]).values()
    assert decision_of(verdict) != row.expected, explain(row, mutated.request(row), verdict)


def _grant_the_whole_primary_account_everything(statement: Json) -> Json:
    """A careless vault administrator's grant: the primary account's root, every S3 action, no condition."""
    return {k: v for k, v in statement.items() if k != "Condition"} | {"Action": "s3:*"}


def _grant_everything_on_vault(statement: Json) -> Json:
    granted = _grant_the_whole_primary_account_everything(statement)
    bucket = statement["Resource"].rsplit("/agents/*", 1)[0]
    return granted | {"Resource": [bucket, f"{bucket}/*"]}


@pytest.mark.parametrize(
    ("row", "deny"),
    [
        pytest.param(f"{ADMIN}-deletes-vault-version", DENY_DELETING, id="delete-a-version"),
        pytest.param(f"{ADMIN}-shortens-vault-lock", DENY_DELETING, id="shorten-a-lock"),
        pytest.param(f"{ADMIN}-changes-vault-lifecycle", DENY_RECONFIGURING, id="change-the-lifecycle"),
        pytest.param(f"{ADMIN}-changes-vault-policy", DENY_RECONFIGURING, id="change-the-policy"),
    ],
)
def test_across_accounts_the_deny_holds_even_if_the_vault_granted_the_primary_everything(
    offsite_matrix: AccessMatrix, row: str, deny: str
) -> None:
    # Given a vault whose bucket policy (carelessly) grants the whole primary account s3:* on the vault
    broad = offsite_matrix.resolved.with_statement("AllowPipelineReadersToReadCopies", _grant_everything_on_vault)
    # When the primary's administrator (its own policy: s3:*, kms:*) asks, it is still denied, by the Deny
    (verdict,) = offsite_matrix.with_stack(broad).evaluate([BY_NAME[row]]).values()
    assert decision_of(verdict) == DENIED, explain(BY_NAME[row], offsite_matrix.request(BY_NAME[row]), verdict)
    assert deny in verdict.deciding_statements()
    # and only the Deny: without it the same request would be allowed
    (verdict,) = offsite_matrix.with_stack(broad.without_statement(deny)).evaluate([BY_NAME[row]]).values()
    assert decision_of(verdict) == ALLOWED, explain(BY_NAME[row], offsite_matrix.request(BY_NAME[row]), verdict)


@pytest.mark.parametrize(
    ("sid", "row"),
    [
        pytest.param(
            "AllowReplicationIntoAgents", "replication-replicates-copy", id="vault-stops-trusting-replication"
        ),
        pytest.param("ReplicateIntoTheVault", "replication-replicates-copy", id="role-loses-its-replicate-right"),
        pytest.param(
            "AllowReplicationToEncryptReplicasThroughS3", "replication-encrypts-copy", id="vault-key-stops-trusting"
        ),
        pytest.param("EncryptCopiesWithTheVaultKeyThroughS3", "replication-encrypts-copy", id="role-loses-vault-key"),
        pytest.param("AllowPipelineReadersToReadCopies", "watchdog-heads-vault-version", id="vault-stops-reads"),
        pytest.param("ReadVaultCopies", "watchdog-heads-vault-version", id="watchdog-loses-its-vault-reads"),
        pytest.param("DecryptVaultCopiesThroughS3", "restore-decrypts-vault-copy", id="restore-loses-vault-key"),
    ],
)
def test_across_accounts_a_vault_read_or_write_needs_both_sides(
    offsite_matrix: AccessMatrix, sid: str, row: str
) -> None:
    """Each cross-account grant is needed on both sides: dropping either the vault's or the role's denies it."""
    assert decision_of(offsite_matrix.evaluate([BY_NAME[row]])[row]) == ALLOWED
    (verdict,) = (
        offsite_matrix.with_stack(offsite_matrix.resolved.without_statement(sid)).evaluate([BY_NAME[row]]).values()
    )
    assert decision_of(verdict) == DENIED, explain(BY_NAME[row], offsite_matrix.request(BY_NAME[row]), verdict)


# --- coverage ------------------------------------------------------------------------------------------------
def test_every_primary_principal_is_denied_every_destructive_request_on_the_vault() -> None:
    for principal in PRIMARY_PRINCIPALS:
        for what, action, resource, _ in DESTRUCTIVE:
            row = BY_NAME[f"{principal}-{what}"]
            assert (row.principal, row.action, row.resource, row.expected) == (principal, action, resource, DENIED)


def test_every_role_of_the_offsite_template_is_a_principal_of_some_offsite_row(offsite_matrix: AccessMatrix) -> None:
    role_ids = offsite_matrix.bindings.role_ids
    used = {role_ids[row.principal] for row in OFFSITE_ROWS if row.principal in role_ids}
    assert set(offsite_matrix.resolved.roles) == set(role_ids.values()) == used


def test_every_resource_policy_of_the_vault_is_evaluated_by_some_row(
    offsite_synthesized: Any, offsite_matrix: AccessMatrix
) -> None:
    vault_policies = set(resolve_vault(offsite_synthesized.vault).resource_policies)
    evaluated = {offsite_matrix.resolved.policy_holder(offsite_matrix.request(row).resource) for row in OFFSITE_ROWS}
    assert len(vault_policies) == 3, "the vault's bucket, access-log bucket and key policies"
    assert vault_policies - evaluated == set()


def test_row_names_are_unique_across_every_matrix() -> None:
    names = [row.name for row in (*ROWS, *OFFSITE_ROWS, *SAME_ACCOUNT_VAULT_ROWS)]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
