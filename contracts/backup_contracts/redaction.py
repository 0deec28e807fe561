"""The one place that masks secrets: in logs, events, stderr tails, command lines and alerts alike.

Two nets, applied in this order by ``redact``:

1. **Known values.** Every secret the agent resolves is registered (``register_secret``) together
   with the forms it takes when a tool or a log line quotes it: URL-encoded (``quote`` and
   ``quote_plus``), pgpass-escaped (``\\`` and ``:`` backslash-escaped), libpq-conninfo-quoted
   (``\\`` and ``'`` backslash-escaped), my.cnf/ini-quoted (``\\``, ``"`` and line breaks escaped)
   and JSON/``repr``-escaped. Each registered form is replaced
   by ``***``, longest first, so a secret that contains another is masked whole.
2. **Credential shapes** (``CREDENTIAL_PATTERNS``), for secrets nobody registered (a tool's own
   error message, a Lambda that never saw the value): ``password=…`` / ``token: …`` where the
   name *contains* a credential word and is followed by ``=`` or ``:``; ``--password VALUE``;
   mysql-style ``-pVALUE``; ``scheme://user:password@host``; ``Bearer``/``Basic`` tokens; AWS
   access key ids; the password field of a ``~/.pgpass`` line. A quoted value is masked whole, escaped
   quotes included. A credential word followed by plain whitespace is ordinary text (a table named
   ``secret`` in ``LOCK TABLE public.secret IN ACCESS SHARE MODE`` stays as it is).

``RedactingFilter`` applies ``redact`` to every log record: its message, its exception text and every
extra attribute (strings, and strings inside dicts and lists), so no logger can leak what it was
given. Agents install it on their log handler, the Lambdas on Powertools' handler.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask innocent text everywhere; they are not registered

_Replacement = Callable[[re.Match[str]], str]

# A name that contains a credential word: PGPASSWORD, MYSQL_PWD, db_password, api-key, X-Auth-Token ...
_CREDENTIAL_NAME = (
    r"[A-Za-z0-9_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|credential)[A-Za-z0-9_-]*"
)
# a quoted value may contain its quote backslash-escaped (my.cnf "pa\"ss", conninfo 'pa\'ss'): mask it whole
_VALUE = r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s'\";,&]+)"

CREDENTIAL_PATTERNS: tuple[tuple[re.Pattern[str], _Replacement], ...] = (
    # name=value, name: value, "name": "value" (quoted or bare); never a bare word after whitespace
    (
        re.compile(rf"(?i)(?<![A-Za-z0-9_-])({_CREDENTIAL_NAME})([\"']?\s*[=:]\s*){_VALUE}"),
        lambda m: f"{m.group(1)}{m.group(2)}{MASK}",
    ),
    # --password VALUE, --passwd=VALUE (a command line's option)
    (re.compile(r"(?i)(--(?:password|passwd))(=|\s+)(\S+)"), lambda m: f"{m.group(1)}{m.group(2)}{MASK}"),
    # mysql-style -pVALUE as a separate word (never -P<port>, which is upper case)
    (re.compile(r"(^|\s)-p(\S+)"), lambda m: f"{m.group(1)}-p{MASK}"),
    # scheme://user:password@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/\s@]*:)([^@\s]+)(@)"), lambda m: f"{m.group(1)}{MASK}{m.group(3)}"),
    # Authorization: Bearer xxx / Basic xxx
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), lambda m: f"{m.group(1)} {MASK}"),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), lambda m: MASK),
    # a ~/.pgpass line, host:port:database:user:password (port a number or *), fields backslash-escaped
    (
        re.compile(
            r"(?<![^\s\"'])((?:[^:\s\\]|\\.)+:(?:\*|\d{1,5}):(?:[^:\s\\]|\\.)+:(?:[^:\s\\]|\\.)+:)(?:[^\s\\]|\\.)+"
        ),
        lambda m: f"{m.group(1)}{MASK}",
    ),
)


# a name that holds a credential's *location*, not the credential: --password-file=..., TOKEN_PATH=...
_REFERENCE_NAME = re.compile(r"(?i)[_-]?(?:file|path|dir|command|cmd|fd|env|id|name|arn|ref)$")
_INLINE_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^:/\s@]*:[^@\s]+@"), "a password in a URL (scheme://user:password@host)"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), "an Authorization token"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
)
_NAMED_VALUE = re.compile(rf"(?i)(?<![A-Za-z0-9_-])-*({_CREDENTIAL_NAME})[\"']?\s*[=:]\s*{_VALUE}")


def is_credential_name(name: str) -> bool:
    """``MONGO_PASSWORD``, ``api-key``, ``X-Auth-Token``: a name whose value is a secret (not ``..._FILE``)."""
    return bool(re.fullmatch(_CREDENTIAL_NAME, name, flags=re.IGNORECASE)) and not _REFERENCE_NAME.search(name)


def inline_credential(text: str) -> str | None:
    """What credential ``text`` carries in the clear (for config validation), or None. Never the value."""
    for match in _NAMED_VALUE.finditer(text):
        if is_credential_name(match.group(1)):
            return f"a {match.group(1)} value"
    for pattern, what in _INLINE_SHAPES:
        if pattern.search(text):
            return what
    return None


def pgpass_escape(value: str) -> str:
    """A value as a ~/.pgpass field writes it: backslash and colon escaped with a backslash."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def option_file_escape(value: str) -> str:
    """A value inside double quotes of a MySQL/MariaDB option file (my.cnf, ini-style)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def conninfo_escape(value: str) -> str:
    """A value inside single quotes of a libpq conninfo string: backslash and quote escaped."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def escaped_forms(value: str) -> frozenset[str]:
    """``value`` and every form it takes when quoted by a URL, a pgpass file, a conninfo, JSON or repr."""
    forms = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        pgpass_escape(value),
        conninfo_escape(value),
        option_file_escape(value),
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
    }
    return frozenset(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


class SecretRegistry:
    """The secret values (and their escaped forms) this process knows; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: tuple[str, ...] = ()

    def register(self, value: str) -> None:
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            known = set(self._forms) | escaped_forms(value)
            self._forms = tuple(sorted(known, key=len, reverse=True))

    def forms(self) -> tuple[str, ...]:
        """Every registered form, longest first."""
        return self._forms

    def clear(self) -> None:
        with self._lock:
            self._forms = ()


_registry = SecretRegistry()


def register_secret(value: str) -> None:
    """Remember a resolved secret so that it (and its escaped forms) is masked wherever it would appear."""
    _registry.register(value)


def known_secrets() -> tuple[str, ...]:
    return _registry.forms()


def forget_secrets() -> None:
    """Tests only: start from an empty registry."""
    _registry.clear()


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Mask registered secrets (plus ``extra`` values and their forms) and credential shapes in ``text``."""
    if not text:
        return text
    forms: Iterable[str] = _registry.forms()
    more = [form for value in extra if value for form in escaped_forms(value)]
    if more:
        forms = sorted({*forms, *more}, key=len, reverse=True)
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    for pattern, replacement in CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """``redact`` applied to every string inside ``value`` (dicts, lists, tuples); others unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


_STANDARD_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class RedactingFilter(logging.Filter):
    """Masks a record's message, exception text and extra attributes, and freezes the result."""

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
            if name not in _STANDARD_RECORD_ATTRIBUTES and isinstance(value, str | dict | list | tuple):
                setattr(record, name, redact_value(value))
        return True
