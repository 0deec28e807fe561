"""cdk-nag 3 acknowledgements: every one names a rule finding and says why it is acceptable.

cdk-nag 3 dropped ``NagSuppressions``; findings are acknowledged with CDK's native
``Validations.of(construct).acknowledge``. A finding that lists a resource or action is acknowledged
by its exact ``RuleId[Finding]`` id, never by the bare rule, so new wildcards still fail the gate.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str, *, applies_to: list[str] | None = None) -> None:
    """Acknowledge ``rule`` on ``scope`` (and its children) — per finding when ``applies_to`` is given."""
    if len(reason.split()) < 5:
        raise ValueError(f"acknowledgement of {rule} needs a specific reason, got {reason!r}")
    if applies_to:
        for finding in applies_to:
            Validations.of(scope).acknowledge(Acknowledgment(id=f"{rule}[{finding}]", reason=reason))
    else:
        Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
