"""Who may approve a restore into a protected target: principal ARN patterns, and how a caller matches one.

An approval is an authenticated call (SigV4, checked by AWS at the restore coordinator's function URL):
the caller's principal ARN comes from the request context, never from what the caller types. The fleet
lists who may approve as patterns of those ARNs (``pipeline.approvers``, or a protected target's own
``approvers``), e.g.::

    arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_BackupApprover_*/*   # an Identity Center set
    arn:aws:iam::123456789012:user/alice                                      # an IAM user

A caller signs as an IAM user (``arn:aws:iam::<account>:user/<name>``), a role session
(``arn:aws:sts::<account>:assumed-role/<role>/<session>``) or a federated user
(``arn:aws:sts::<account>:federated-user/<name>``); a pattern of any other shape could never match a
caller (a role's own ``arn:aws:iam::...:role/...`` ARN, the account root) and is refused with the fix.
``*`` matches any characters except ``:``; the account is always written out, so a pattern never
reaches into an account the fleet does not name.
"""

from __future__ import annotations

import re

# partition, service and account of a caller ARN, then what it is (see the module docstring)
PRINCIPAL_PATTERN = (
    r"^arn:aws(?:-cn|-us-gov)?:(?:iam::[0-9]{12}:user/|sts::[0-9]{12}:(?:assumed-role|federated-user)/)"
    r"[A-Za-z0-9+=,.@_/*-]+$"
)
PRINCIPAL_RE = re.compile(PRINCIPAL_PATTERN)
_ACCOUNT_RE = re.compile(r"^arn:[a-z-]+:(?:iam|sts)::([0-9]{12}):")


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` can never match a caller, with the fix; None when it is a valid approver pattern."""
    if PRINCIPAL_RE.match(pattern):
        return None
    role = re.match(r"^arn:(aws[a-z-]*):iam::([0-9]{12}):role/(?:.*/)?([^/]+)$", pattern)
    if role:
        partition, account, name = role.groups()
        return (
            f"{pattern!r} is a role's ARN, but callers sign as its sessions. Fix: write"
            f" arn:{partition}:sts::{account}:assumed-role/{name}/* (or the one session name that is allowed)"
        )
    return (
        f"{pattern!r} is not the ARN of a caller. Fix: write arn:aws:iam::<12-digit account>:user/<name>,"
        " arn:aws:sts::<account>:assumed-role/<role>/<session> or arn:aws:sts::<account>:federated-user/<name>;"
        " '*' stands for any characters except ':'"
    )


def account_of(pattern: str) -> str:
    """The 12-digit account a pattern (or caller ARN) names."""
    found = _ACCOUNT_RE.match(pattern)
    if found is None:
        raise ValueError(f"{pattern!r} names no account")
    return found.group(1)


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join("[^:]*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)))


def matches(pattern: str, caller_arn: str) -> bool:
    """Whether the caller's principal ARN is one the pattern allows (case-sensitive, whole ARN)."""
    return _regex(pattern).fullmatch(caller_arn) is not None


def allowed(patterns: list[str] | tuple[str, ...], caller_arn: str) -> bool:
    return any(matches(pattern, caller_arn) for pattern in patterns)
