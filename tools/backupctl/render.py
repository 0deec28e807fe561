"""Plain-text tables and JSON for backupctl (no AWS here; unit-tested directly)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

RED = "\033[31m"
GREEN = "\033[32m"
YELLOW = "\033[33m"
RESET = "\033[0m"


def use_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and "NO_COLOR" not in os.environ


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], colours: Sequence[str | None] | None = None) -> str:
    """Left-aligned columns separated by two spaces; ``colours`` wraps whole rows (after padding)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    for index, row in enumerate(rows):
        text = line(row)
        colour = colours[index] if colours else None
        out.append(f"{colour}{text}{RESET}" if colour else text)
    return "\n".join(out) + "\n"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=_default) + "\n"
