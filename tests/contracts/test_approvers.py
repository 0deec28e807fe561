"""Approver patterns: which caller ARNs a pattern allows."""

from __future__ import annotations

import pytest

from backup_contracts.approvers import account_of, allowed, matches, pattern_problem

pytestmark = pytest.mark.unit

SSO = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_BackupApprover_*/*"


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_BackupApprover_0a1b2c/alice", True),
        ("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_BackupApprover_0a1b2c/bob@example.com", True),
        ("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0a1b2c/alice", False),
        ("arn:aws:sts::999999999999:assumed-role/AWSReservedSSO_BackupApprover_0a1b2c/alice", False),
        ("arn:aws:iam::123456789012:user/AWSReservedSSO_BackupApprover_x/alice", False),
        ("arn:aws:sts::123456789012:assumed-role/awsreservedsso_backupapprover_0a1b2c/alice", False),  # case counts
    ],
)
def test_a_pattern_matches_the_whole_caller_arn(caller: str, expected: bool) -> None:
    assert matches(SSO, caller) is expected


def test_a_star_never_crosses_into_another_account_or_service() -> None:
    pattern = "arn:aws:iam::123456789012:user/*"
    assert matches(pattern, "arn:aws:iam::123456789012:user/alice")
    assert not matches(pattern, "arn:aws:iam::123456789012:user/alice:arn:aws:iam::999999999999:user/x")


def test_regex_characters_in_a_pattern_are_literal() -> None:
    assert matches("arn:aws:iam::123456789012:user/a.b", "arn:aws:iam::123456789012:user/a.b")
    assert not matches("arn:aws:iam::123456789012:user/a.b", "arn:aws:iam::123456789012:user/axb")


def test_allowed_means_any_pattern_matches() -> None:
    patterns = ("arn:aws:iam::123456789012:user/alice", SSO)
    assert allowed(patterns, "arn:aws:iam::123456789012:user/alice")
    assert not allowed(patterns, "arn:aws:iam::123456789012:user/mallory")
    assert not allowed((), "arn:aws:iam::123456789012:user/alice")


def test_valid_patterns_have_no_problem_and_name_their_account() -> None:
    for pattern in (SSO, "arn:aws:iam::123456789012:user/alice", "arn:aws-cn:sts::210987654321:federated-user/x"):
        assert pattern_problem(pattern) is None
    assert account_of(SSO) == "123456789012"
