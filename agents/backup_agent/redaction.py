"""Masking of secret values in logs, events and error messages.

Every secret the agent resolves is registered here; ``redact`` replaces each registered value (and
common ``password=...`` shapes) with ``***``. ``RedactingFilter`` applies it to every log record.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_MIN_SECRET_LEN = 4  # shorter values would mask innocent text everywhere; refuse to rely on them

_lock = threading.Lock()
_secrets: set[str] = set()
_PATTERNS = (
    re.compile(r"(?i)(password|passwd|pwd|secret|token)(\s*[=:]\s*)([^\s'\";,&]+)"),
    re.compile(r"(?i)(://[^:/@\s]+:)([^@/\s]+)(@)"),
)


def register_secret(value: str) -> None:
    """Remember a resolved secret so that it is masked wherever it would be logged or reported."""
    if len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value)


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_secrets)


def redact(text: str) -> str:
    """Mask every registered secret and well-known credential shapes in ``text``."""
    if not text:
        return text
    # longest first so that a secret containing another is masked whole
    for secret in sorted(known_secrets(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _PATTERNS[1].sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)


class RedactingFilter(logging.Filter):
    """Formats the record's message once, masks it, and freezes the result into the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        for name, value in list(vars(record).items()):
            if name.startswith("ctx_") and isinstance(value, str):
                setattr(record, name, redact(value))
        return True
