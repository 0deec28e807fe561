"""One wording for "this input does not match its model", wherever a pydantic model rejects input.

The wording is bounded and one line whatever the input: it ends up in SNS messages, events and ledger
items, and an error's location may be a key the sender chose (an unknown field named with newlines,
or 400 KB long).
"""

from __future__ import annotations

from pydantic import ValidationError

from backup_contracts.formatting import one_line

ERRORS_SHOWN = 10
LOCATION_PART_MAX = 64
MESSAGE_MAX = 200


def describe_validation_error(exc: ValidationError, *, root: str = "detail", limit: int | None = ERRORS_SHOWN) -> str:
    """``field.path: message; other: message`` for every error (the first ``limit`` when given; None: all).

    ``root`` names the whole input when an error is not about one field (e.g. a cross-field rule).
    """
    errors = exc.errors(include_input=False, include_url=False)
    shown = errors if limit is None else errors[:limit]
    reason = "; ".join(
        f"{'.'.join(one_line(str(part), LOCATION_PART_MAX) for part in error['loc']) or root}:"
        f" {one_line(error['msg'], MESSAGE_MAX)}"
        for error in shown
    )
    if len(shown) < len(errors):
        reason += f"; and {len(errors) - len(shown)} more"
    return reason
