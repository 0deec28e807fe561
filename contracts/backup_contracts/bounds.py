"""Bounded field types of the contracts: every number finite and bounded, every text and list limited,
every type strict, no control character in a name or a label.

Each type means the same to the pydantic model and to its published JSON Schema (``schemas.py``), so a
detail the schema accepts is one the model accepts and the other way round (``tests/contracts/corpus``
proves it). Strict in the JSON sense: a string is never a number or a boolean, a number is never a
string, a timestamp is an RFC 3339 string (never a Unix number), an integer may be written ``5.0``
(JSON Schema's ``integer``) but never ``5.5``.

Why bounds: DynamoDB numbers have at most 38 digits and items 400 KB, EventBridge events 256 KiB, SNS
messages 256 KiB, and ``datetime`` arithmetic overflows past the year 9999; a value past any of them
used to crash a handler (the record then went to the DLQ) instead of being refused with a reason.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints

from backup_contracts.naming import NAME_PATTERN

# Python's ``$`` (the ``re`` module, hence Python JSON Schema validators) also matches before a final
# newline; ECMA-262's does not. The published schemas end every pattern with END so that "db-1\n" is
# refused everywhere, as the model (Rust regex, where ``$`` is the end of the text) refuses it.
END = "(?!\\n)"

MAX_BYTES = 2**53 - 1  # sizes: exact in a JSON double, far below DynamoDB's 38 digits
MAX_DURATION_S = 366 * 24 * 3600.0  # no backup or restore runs for a year
EXIT_CODE_MIN, EXIT_CODE_MAX = -(2**31), 2**32 - 1  # signals (negative) up to Windows' 32-bit codes
YEAR_MIN, YEAR_MAX = 2000, 2999  # far from datetime's limits, whatever a deadline or a TTL adds

LABEL_MAX = 256  # engine, format, tool version, requester, bucket, reason code, …
TEXT_MAX = 4096  # free text with line breaks allowed (an error message)
KEY_MAX = 1024  # S3's longest key
TARGETS_MAX = 2000  # names one heartbeat may list (the agent's ledger item stays far below 400 KB)

# the JSON facts an agent reports about a restore (``verification``) and a manifest's facts: depth, width
FACTS_DEPTH = 4
FACTS_ENTRIES = 100
FACTS_TEXT_MAX = 1024
FACTS_NUMBER_MAX = 1e15
FACTS_JSON_MAX = 32 * 1024  # serialized size; the one bound a JSON Schema cannot say (docs/contracts.md)

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"  # a one-line text: no newline, tab or other control character
TIMESTAMP_PATTERN = (
    r"^2[0-9]{3}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN)


def _not_text_or_flag(kind: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str | bool | bytes):
            raise ValueError(f"must be a JSON {kind}, not {type(value).__name__}")
        return value

    return BeforeValidator(check)


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string such as 2026-11-22T12:00:00Z")
    if not _TIMESTAMP_RE.fullmatch(value):
        raise ValueError(f"must be an RFC 3339 timestamp (years {YEAR_MIN}-{YEAR_MAX}) such as 2026-11-22T12:00:00Z")
    return value


def _year_in_range(value: datetime) -> datetime:
    if not YEAR_MIN <= value.year <= YEAR_MAX:
        raise ValueError(f"year {value.year} is outside {YEAR_MIN}-{YEAR_MAX}")
    return value


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Label = Annotated[str, StringConstraints(max_length=LABEL_MAX, pattern=NO_CONTROL)]
RequiredLabel = Annotated[str, StringConstraints(min_length=1, max_length=LABEL_MAX, pattern=NO_CONTROL)]
Text = Annotated[str, StringConstraints(max_length=TEXT_MAX)]
ObjectKey = Annotated[str, StringConstraints(max_length=KEY_MAX, pattern=NO_CONTROL)]
ByteCount = Annotated[int, Field(ge=0, le=MAX_BYTES), _not_text_or_flag("integer")]
Seconds = Annotated[float, Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False), _not_text_or_flag("number")]
ExitCode = Annotated[int, Field(ge=EXIT_CODE_MIN, le=EXIT_CODE_MAX), _not_text_or_flag("integer")]
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_timestamp),
    AfterValidator(_year_in_range),
    Field(json_schema_extra={"pattern": TIMESTAMP_PATTERN}),
]
Flag = Annotated[bool, Field(strict=True)]  # true or false, never "yes" or 1


def _facts_size(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, separators=(",", ":"), default=str))
    if size > FACTS_JSON_MAX:
        raise ValueError(f"is {size} bytes as JSON, more than {FACTS_JSON_MAX}")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


_FactKey = Annotated[str, StringConstraints(max_length=LABEL_MAX)]
_FactNumber = Annotated[float, Field(ge=-FACTS_NUMBER_MAX, le=FACTS_NUMBER_MAX), AfterValidator(_finite)]
_FactInteger = Annotated[int, Field(ge=-FACTS_NUMBER_MAX, le=FACTS_NUMBER_MAX)]
_FactText = Annotated[str, StringConstraints(max_length=FACTS_TEXT_MAX)]


def _fact_value(depth: int) -> Any:
    """A JSON value nested at most ``depth`` containers deep (DynamoDB maps nest at most 32)."""
    scalar: Any = None | Annotated[bool, Field(strict=True)] | _FactInteger | _FactNumber | _FactText
    if depth == 0:
        return scalar
    inner = _fact_value(depth - 1)
    return (
        scalar
        | Annotated[list[inner], Field(max_length=FACTS_ENTRIES)]  # type: ignore[valid-type]
        | Annotated[dict[_FactKey, inner], Field(max_length=FACTS_ENTRIES)]  # type: ignore[valid-type]
    )


if TYPE_CHECKING:
    Facts = dict[str, Any]
else:
    Facts = Annotated[
        dict[_FactKey, _fact_value(FACTS_DEPTH - 1)],
        Field(max_length=FACTS_ENTRIES),
        AfterValidator(_facts_size),
    ]
