"""Every form a secret takes when a tool quotes it is masked by the one redaction module: registered
values in each escaping, and — for a Lambda that never saw the value — the shapes those escapings
produce (a quoted value with escaped quotes, a ~/.pgpass line)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import pytest

from backup_contracts.redaction import (
    MASK,
    conninfo_escape,
    forget_secrets,
    option_file_escape,
    pgpass_escape,
    redact,
    register_secret,
)

pytestmark = pytest.mark.unit

SECRET = "Pa:ss\\wo\"rd é'%"


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


FORMS = {
    "plain": SECRET,
    "url": urllib.parse.quote(SECRET, safe=""),
    "url-plus": urllib.parse.quote_plus(SECRET, safe=""),
    "pgpass": pgpass_escape(SECRET),
    "conninfo": conninfo_escape(SECRET),
    "my.cnf": option_file_escape(SECRET),
    "json": json.dumps(SECRET)[1:-1],
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_registered_secret_is_masked_in_every_escaped_form(form: str) -> None:
    register_secret(SECRET)

    masked = redact(f"tool said: <{FORMS[form]}> then stopped")

    assert masked == f"tool said: <{MASK}> then stopped"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[client]\npassword="Pa:ss\\\\wo\\"rd"\n', f"[client]\npassword={MASK}\n"),
        ("password='Pa\\'ss:wo\\\\rd' host=db", f"password={MASK} host=db"),
        ("*:*:*:*:Pa\\:ss\\\\word", f"*:*:*:*:{MASK}"),
        (
            "pg_dump: could not use db.example:5432:app:backup:s3cr\\:et",
            f"pg_dump: could not use db.example:5432:app:backup:{MASK}",
        ),
    ],
)
def test_unregistered_escaped_secrets_are_masked_whole_by_their_shape(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_times_and_ordinary_colons_are_not_taken_for_a_pgpass_line() -> None:
    text = "started 2026-01-02 12:30:45, host db:5432 ok; a:b:c"
    assert redact(text) == text
