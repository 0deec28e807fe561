"""One redaction for every path: the same secret, in each form a tool writes it, is masked in agent logs,
Lambda logs, events, stderr tails, command lines and alerts alike; ordinary words are left alone."""

from __future__ import annotations

import io
import json
import logging
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from backup_agent import proc
from backup_agent.admission import config_failure
from backup_agent.config import parse_config
from backup_agent.logs import JsonFormatter
from backup_agent.secrets import SecretResolver
from backup_contracts import redaction
from backup_contracts.jobs import Job
from backup_contracts.redaction import RedactingFilter, escaped_forms, redact
from backup_functions import alerts
from backup_functions.ledger import RestoreItem
from backup_functions.restore import messages

pytestmark = pytest.mark.unit

SECRET = "Pw:d/q@s\\t9"  # a colon, slash, at-sign and backslash: every escaping differs
FORMS = {
    "plain": SECRET,
    "url-encoded": urllib.parse.quote(SECRET, safe=""),
    "pgpass-escaped": SECRET.replace("\\", "\\\\").replace(":", "\\:"),
}
INNOCENT = "ERROR: deadlock detected while running LOCK TABLE public.secret IN ACCESS SHARE MODE; token count 3"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def registered_secret() -> Iterator[None]:
    """The secret as the agent's resolver registers it (a ``{env: DB_PASSWORD}`` reference)."""
    redaction.forget_secrets()
    SecretResolver(environ={"DB_PASSWORD": SECRET}).resolve({"env": "DB_PASSWORD"})
    yield
    redaction.forget_secrets()


def text_with(form: str) -> str:
    return f"psql: connection failed for 'app' using {form} (retry 2); {INNOCENT}"


def strings(value: object) -> str:
    """Every string inside a JSON-like value, one per line (so escaping cannot hide a leak)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(strings(v) for v in value.values())
    if isinstance(value, list | tuple):
        return "\n".join(strings(v) for v in value)
    return str(value)


def assert_masked(rendered: str, form: str) -> None:
    assert form not in rendered
    assert SECRET not in rendered
    assert "***" in rendered
    assert INNOCENT in rendered, "the table named secret and the word token must stay as they are"


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_agent_json_log_line_masks_the_message_and_its_extra_fields(form: str) -> None:
    record = logging.LogRecord("backup_agent", logging.ERROR, __file__, 1, "%s", (text_with(form),), None)
    record.ctx_detail = text_with(form)
    RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert_masked(line["message"], form)
    assert_masked(line["detail"], form)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_lambda_log_extras_are_masked_however_deep(form: str) -> None:
    record = logging.LogRecord("backup_functions", logging.INFO, __file__, 1, "handled", None, None)
    record.outcome = {"problems": [text_with(form)], "note": text_with(form)}
    RedactingFilter().filter(record)
    assert_masked(record.outcome["problems"][0], form)
    assert_masked(record.outcome["note"], form)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_backup_failed_event_masks_the_error(form: str, tmp_path) -> None:
    config = parse_config(
        json.dumps(
            {
                "agent": "demo-host",
                "region": "us-east-1",
                "queue_url": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
                "bus_name": "bus",
                "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/0000",
                "bucket": "backups",
                "state_dir": str(tmp_path),
                "targets": {"app": {"engine": "command", "dump_command": ["true"], "restore_command": ["true"]}},
            }
        )
    )
    job = Job(
        job_id="app.1",
        kind="backup",
        agent="demo-host",
        target="app",
        trigger="schedule",
        issued_at=NOW,
        deadline=NOW,
        bucket="backups",
        key_prefix="agents/demo-host/",
        retention_class="standard",
    )
    event = config_failure(job, config, text_with(form), NOW)
    assert_masked(strings(event.model_dump(mode="json")), form)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_stderr_tail_of_a_child_is_masked(form: str) -> None:
    tail = proc.tail_text(text_with(form).encode(), proc.Redactor())
    assert_masked(tail, form)


def test_command_lines_are_masked() -> None:
    line = proc.command_line(["psql", f"--password={SECRET}", "-c", "LOCK TABLE public.secret IN ACCESS SHARE MODE"])
    assert SECRET not in line
    assert "public.secret IN ACCESS SHARE MODE" in line


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_backup_alert_masks_error_and_stderr_in_body_and_facts(form: str) -> None:
    situation = alerts.Situation(
        pipeline="bp",
        agent="db-1",
        target="orders",
        since=NOW,
        now=NOW,
        error=text_with(form),
        stderr_tail=text_with(form),
        problems=(text_with(form),),
    )
    alert = alerts.backup_failed(situation)
    assert form not in alert.body
    assert form not in strings(alert.facts)
    assert form not in strings(alert.message_attributes())
    assert "public.secret IN ACCESS SHARE MODE" in alert.body


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_restore_failed_message_masks_error_and_stderr(form: str) -> None:
    item = {
        "pk": "RESTORE#r-1",
        "sk": "STATE",
        "state": "failed",
        "restore_id": "r-1",
        "target": "orders",
        "destination": "orders-copy",
        "mode": "clone",
        "stage": "restore",
        "error": text_with(form),
        "stderr_tail": text_with(form),
    }
    alert = messages.restore_failed("bp", item=RestoreItem.model_validate(item), now=NOW)
    assert form not in alert.body
    assert form not in strings(alert.facts)


def test_unregistered_credential_shapes_are_masked() -> None:
    for text, leak in [
        ("PGPASSWORD=abc123 pg_dump", "abc123"),
        ('{"password": "hunter2x"}', "hunter2x"),
        ("MYSQL_PWD='hunter 2' mysql", "hunter 2"),
        ("mysql -uroot -phunter2 db", "hunter2"),
        ("uri postgresql://app:hunter2@db:5432/x", "hunter2"),
        ("token: abc.def.ghi", "abc.def.ghi"),
        ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        ("key AKIAABCDEFGHIJKLMNOP used", "AKIAABCDEFGHIJKLMNOP"),
        ("pg_dump --password hunter2 -d x", "hunter2"),
    ]:
        assert leak not in redact(text), text


def test_ordinary_words_after_credential_words_are_not_masked() -> None:
    for text in (
        INNOCENT,
        "GRANT SELECT ON TABLE secret TO reporting",
        'pg_dump: error: connection to server at "127.0.0.1", port 5432 failed -P3306',
        "the secret of a good backup is a restore",
    ):
        assert redact(text) == text


def test_short_values_are_not_registered_so_innocent_text_survives() -> None:
    redaction.register_secret("ab")
    assert redact("ab cab abba") == "ab cab abba"


def test_escaped_forms_cover_url_pgpass_conninfo_and_json() -> None:
    forms = escaped_forms("a'b:c\\d e")
    assert {"a'b:c\\d e", "a%27b%3Ac%5Cd%20e", "a%27b%3Ac%5Cd+e", "a'b\\:c\\\\d e", "a\\'b:c\\\\d e"} <= forms
    assert "a'b:c\\\\d e" in forms  # JSON-escaped backslash


def test_agent_log_handler_masks_what_any_logger_writes(tmp_path) -> None:
    from backup_agent.logs import setup_logging

    stream = io.StringIO()
    setup_logging(json_logs=True, stream=stream)
    logging.getLogger("botocore.some.child").warning("sent %s", text_with(SECRET))
    logging.getLogger("backup_agent.engines").error("failed", extra={"ctx_url": f"postgres://u:{SECRET}@h/db"})
    output = stream.getvalue()
    assert SECRET not in output
    assert FORMS["url-encoded"] not in output
