"""One wording for "this input does not match its model", wherever a pydantic model rejects input."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(exc: ValidationError, *, root: str = "detail", limit: int | None = None) -> str:
    """``field.path: message; other: message`` for every error (the first ``limit`` when given).

    ``root`` names the whole input when an error is not about one field (e.g. a cross-field rule).
    """
    errors = exc.errors()
    shown = errors if limit is None else errors[:limit]
    reason = "; ".join(f"{'.'.join(map(str, error['loc'])) or root}: {error['msg']}" for error in shown)
    if len(shown) < len(errors):
        reason += f"; and {len(errors) - len(shown)} more"
    return reason
