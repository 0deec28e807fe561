"""PostgreSQL engine against the real local server: dump, validate, restore, redaction, secrets."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from backup_agent.engines import build_engine
from backup_agent.engines.base import EngineError, InvalidDumpError
from backup_agent.engines.config import PostgresConfig, SecretRef
from backup_agent.engines.postgresql import PostgresEngine

from .conftest import PG, psql, run_dump, unique, validate

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SCHEMA = """
CREATE TABLE items (
    id int PRIMARY KEY,
    doc jsonb,
    payload bytea,
    seen_at timestamptz,
    local_ts timestamp(6),
    label text,
    amount numeric(20, 6),
    addr inet,
    tags text[]
);
INSERT INTO items VALUES
  (1, '{"a": [1, 2, {"b": null}], "ü": "ñ"}', '\\x00ff10deadbeef', '2026-01-02 03:04:05.123456+05:30',
   '1999-12-31 23:59:59.999999', 'žluťoučký kůň 🐎 "quoted" \\ backslash', 12345678901234.123456, '10.1.2.3/8',
   ARRAY['x', NULL, 'ü']),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, '[]', '\\x', 'infinity', '-infinity', E'tab\\tnew\\nline', -0.000001, '::1', '{}');
INSERT INTO items SELECT g, jsonb_build_object('g', g), decode(md5(g::text), 'hex'), now(), now()::timestamp,
  repeat('x', g % 50), g * 1.5, '192.168.0.1', ARRAY[g::text] FROM generate_series(4, 500) g;
CREATE TABLE "Mixed Case" (k text PRIMARY KEY, v int REFERENCES items(id));
INSERT INTO "Mixed Case" VALUES ('one', 1), ('two', 2);
CREATE VIEW item_labels AS SELECT id, label FROM items;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.v := NEW.v; RETURN NEW; END $$;
CREATE TRIGGER mixed_touch BEFORE INSERT ON "Mixed Case" FOR EACH ROW EXECUTE FUNCTION touch();
SELECT lo_from_bytea(0, 'large object bytes');
"""

SNAPSHOT_SQL = """
COPY (SELECT * FROM items ORDER BY id) TO STDOUT;
COPY (SELECT * FROM "Mixed Case" ORDER BY k) TO STDOUT;
COPY (SELECT * FROM item_labels ORDER BY id) TO STDOUT;
SELECT tgname FROM pg_trigger WHERE NOT tgisinternal;
SELECT encode(lo_get(oid), 'escape') FROM pg_largeobject_metadata;
"""


def snapshot(db: str) -> str:
    return psql(db, SNAPSHOT_SQL)


def make_source(name: str) -> None:
    psql("postgres", f'CREATE DATABASE "{name}";')
    psql(name, SCHEMA)


def engine_for(db: str, resolve=lambda ref: "unused", **overrides) -> PostgresEngine:
    config = PostgresConfig(engine="postgresql", database=db, **{**PG, **overrides})
    engine = build_engine("pg-test", config, resolve)
    assert isinstance(engine, PostgresEngine)
    return engine


@pytest.fixture
def source(pg_databases) -> str:
    name = pg_databases("bk_src")
    make_source(name)
    return name


@pytest.fixture(scope="module")
def reference_dump(postgres_server: None) -> bytes:
    name = unique("bk_ref")
    make_source(name)
    try:
        result = run_dump(engine_for(name))
    finally:
        psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
    assert result.outcome.exit_code == 0, result.outcome.stderr_tail
    return result.data


def test_dump_passes_validator_and_clone_restore_equals_source(source: str, pg_databases) -> None:
    result = run_dump(engine_for(source))

    assert result.outcome.exit_code == 0, result.outcome.stderr_tail
    assert result.error is None
    assert result.facts is not None
    assert result.facts["tables"] == 2
    assert result.facts["large_objects"] == 1
    assert result.facts["completeness_checked"] is True

    clone = pg_databases("bk clone's = x")  # spaces, quote and '=' must not break the conninfo
    report = engine_for(clone).restore(io.BytesIO(result.data), mode="clone")

    assert snapshot(clone) == snapshot(source)
    assert report.verification["rows"] == {"public.Mixed Case": 2, "public.items": 500}
    assert report.verification["missing_tables"] == []
    assert report.verification["bytes"] == len(result.data)


def test_in_place_restore_over_changed_data_gives_the_snapshot_back(source: str) -> None:
    before = snapshot(source)
    dump = run_dump(engine_for(source))
    psql(
        source,
        "UPDATE items SET label = 'changed' WHERE id < 10; DELETE FROM \"Mixed Case\";"
        " INSERT INTO items (id) VALUES (9999);"
        " CREATE OR REPLACE VIEW item_labels AS SELECT id, 'x'::text AS label FROM items;"
        " CREATE TABLE created_later (x int);",
    )
    assert snapshot(source) != before

    report = engine_for(source).restore(io.BytesIO(dump.data), mode="in-place")

    assert snapshot(source) == before
    assert report.verification["total_rows"] == 502
    assert report.verification["extra_tables"] == ["public.created_later"]


def test_failed_in_place_restore_is_rolled_back_and_says_so(source: str) -> None:
    before = snapshot(source)
    dump = run_dump(engine_for(source)).data

    with pytest.raises(EngineError, match=r"destination rolled back \(single transaction\)") as info:
        engine_for(source).restore(io.BytesIO(dump[: len(dump) // 2]), mode="in-place")

    assert info.value.stage == "restore"
    assert snapshot(source) == before


def test_clone_refuses_a_destination_that_has_tables(source: str) -> None:
    dump = run_dump(engine_for(source))

    with pytest.raises(EngineError, match="not empty") as info:
        engine_for(source).restore(io.BytesIO(dump.data), mode="clone")

    assert info.value.stage == "restore"


def test_failed_clone_restore_drops_the_database_it_created(pg_databases, reference_dump: bytes) -> None:
    clone = pg_databases("bk_clone")
    truncated = reference_dump[: len(reference_dump) - 40]

    with pytest.raises(EngineError, match="dropped again"):
        engine_for(clone).restore(io.BytesIO(truncated), mode="clone")

    assert psql("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{clone}';").strip() == "0"


def test_validator_rejects_the_dump_truncated_at_any_of_many_points(reference_dump: bytes) -> None:
    engine = engine_for("unused")
    size = len(reference_dump)
    cuts = sorted({1, 4, 5, 11, 50, 200, 1000, *range(size // 40, size, size // 40), size - 10, size - 5, size - 1})

    for cut in cuts:
        with pytest.raises(InvalidDumpError):
            validate(engine, reference_dump[:cut], step=997)
    assert validate(engine, reference_dump, step=997)["tables"] == 2


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage that is not a dump" * 10, b"PGDMP" + os.urandom(2000), b"PGDMP\x01\x0e\x00\x04\x08\x03"],
    ids=["empty", "garbage", "magic-then-noise", "directory-format-header"],
)
def test_validator_rejects_empty_and_garbage_streams(data: bytes) -> None:
    with pytest.raises(InvalidDumpError):
        validate(engine_for("unused"), data)


def test_validator_rejects_trailing_bytes_after_the_last_block(reference_dump: bytes) -> None:
    with pytest.raises(InvalidDumpError):
        validate(engine_for("unused"), reference_dump + b"\x01")


@pytest.fixture
def failing_pg_dump(tmp_path: Path) -> Path:
    """A pg_dump wrapper that writes a complete dump, then leaks credentials to stderr and exits 3."""
    script = tmp_path / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        'pg_dump "$@" || exit 9\n'
        'echo "pg_dump: error: lost connection; password=$(cut -d: -f5 "$PGPASSFILE")" >&2\n'
        'PW=$(cut -d: -f5 "$PGPASSFILE")\n'
        'echo "retry with postgresql://postgres:$PW@db/x or PGPASSWORD=$PW" >&2\n'
        'echo "raw: $(cut -d: -f5 "$PGPASSFILE")" >&2\n'
        "exit 3\n"
    )
    script.chmod(0o755)
    return script


def test_dump_tool_exiting_non_zero_after_writing_data_is_reported_with_a_redacted_tail(
    source: str,
    failing_pg_dump: Path,
    env_resolve,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BK_TEST_PGPW", "s3cret-Wrapper-pw")
    engine = engine_for(source, env_resolve, pg_dump=str(failing_pg_dump), password=SecretRef(env="BK_TEST_PGPW"))

    result = run_dump(engine)

    assert result.outcome.exit_code == 3
    assert result.error is None  # the bytes are a complete archive: only the exit code can catch this
    assert "lost connection" in result.outcome.stderr_tail
    assert "s3cret-Wrapper-pw" not in result.outcome.stderr_tail
    assert "raw: ***" in result.outcome.stderr_tail
    assert len(result.outcome.stderr_tail.encode()) <= 4096


def _proc_file(pid: int, name: str) -> bytes:
    return Path(f"/proc/{pid}/{name}").read_bytes()


def test_password_reaches_pg_dump_only_through_a_private_passfile(
    source: str,
    env_resolve,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "pw-" + unique("x") + ":with\\colon"
    role = unique("bk_role")
    psql("postgres", f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}';")
    monkeypatch.setenv("BK_TEST_PGPW", password)
    # hold a lock so that pg_dump is still running while we inspect it
    locker = subprocess.Popen(
        [
            "psql",
            "-X",
            "-h",
            PG["host"],
            "-U",
            "postgres",
            "-d",
            source,
            "-c",
            "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20);",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        engine = engine_for(source, env_resolve, user=role, password=SecretRef(env="BK_TEST_PGPW"))
        running = engine.start_dump()
        time.sleep(0.5)
        argv = _proc_file(running.pid, "cmdline").split(b"\0")
        environ = dict(
            entry.split(b"=", 1) for entry in _proc_file(running.pid, "environ").split(b"\0") if b"=" in entry
        )
        passfile = Path(environ[b"PGPASSFILE"].decode())
        passfile_mode = stat.S_IMODE(passfile.stat().st_mode)
        passfile_dir_mode = stat.S_IMODE(passfile.parent.stat().st_mode)
        passfile_text = passfile.read_text()
    finally:
        release(locker, source)
    result_data = running.stream.read()
    outcome = running.wait()
    psql("postgres", f"DROP ROLE IF EXISTS {role};", check=False)

    assert argv[0].endswith(b"pg_dump")
    assert not any(password.encode() in arg for arg in argv)
    assert not any(b"password=" in arg.lower() for arg in argv)
    assert b"PGPASSWORD" not in environ
    assert password.encode() not in b"".join(environ.values())
    assert passfile_mode == 0o600
    assert passfile_dir_mode == 0o700
    assert passfile_text == "*:*:*:*:" + password.replace("\\", "\\\\").replace(":", "\\:") + "\n"
    assert outcome.exit_code == 0, outcome.stderr_tail
    assert result_data.startswith(b"PGDMP")
    assert not passfile.exists()


def release(locker: subprocess.Popen[bytes], db: str) -> None:
    psql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = '{db}' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid();",
    )
    locker.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_failure_is_reported_with_a_redacted_stderr_tail(env_resolve, monkeypatch) -> None:
    monkeypatch.setenv("BK_TEST_PGPW", "hunter2-very-secret")
    engine = engine_for("nowhere", env_resolve, port=_free_port(), password=SecretRef(env="BK_TEST_PGPW"))

    result = run_dump(engine)

    assert result.outcome.exit_code != 0
    assert "failed" in result.outcome.stderr_tail or "refused" in result.outcome.stderr_tail
    assert "hunter2-very-secret" not in result.outcome.stderr_tail
    assert isinstance(result.error, InvalidDumpError)  # nothing was written


def test_check_and_versions_report_a_healthy_target(source: str) -> None:
    engine = engine_for(source)

    assert engine.check() == []
    versions = engine.versions()
    assert versions.tool_version is not None
    assert versions.tool_version.startswith("pg_dump")
    assert versions.server_version is not None
    assert versions.server_version[:2].isdigit()
    assert versions.warnings == ()


def test_versions_warn_when_pg_dump_is_older_than_the_server(source: str, tmp_path: Path) -> None:
    old = tmp_path / "pg_dump"
    old.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    old.chmod(0o755)

    versions = engine_for(source, pg_dump=str(old)).versions()

    assert any("older than the server" in warning for warning in versions.warnings)


def test_check_reports_an_unreachable_server() -> None:
    problems = engine_for("nowhere", port=_free_port()).check()

    assert problems
    assert "cannot connect" in problems[0]


def test_terminate_stops_a_running_dump_promptly(source: str) -> None:
    locker = subprocess.Popen(
        [
            "psql",
            "-X",
            "-h",
            PG["host"],
            "-U",
            "postgres",
            "-d",
            source,
            "-c",
            "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20);",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        running = engine_for(source).start_dump()
        time.sleep(0.3)
        started = time.monotonic()
        running.terminate()
        outcome = running.wait()
    finally:
        release(locker, source)

    assert time.monotonic() - started < 5
    assert outcome.exit_code != 0


def test_drop_restored_removes_a_scratch_clone(source: str, pg_databases) -> None:
    dump = run_dump(engine_for(source))
    scratch = pg_databases("bk_drill")
    engine = engine_for(scratch)
    engine.restore(io.BytesIO(dump.data), mode="drill")

    engine.drop_restored()

    assert psql("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{scratch}';").strip() == "0"


def test_drop_restored_drops_a_scratch_clone_that_a_session_is_still_connected_to(
    reference_dump: bytes, pg_databases
) -> None:
    scratch = pg_databases("bk_drill")
    engine = engine_for(scratch)
    engine.restore(io.BytesIO(reference_dump), mode="drill")
    session = subprocess.Popen(
        ["psql", "-X", "-q", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], "-d", scratch],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert session.stdin is not None
        session.stdin.write(b"SELECT pg_sleep(60);\n")
        session.stdin.flush()
        connected = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{scratch}';"
        deadline = time.monotonic() + 10
        while psql("postgres", connected).strip() == "0" and time.monotonic() < deadline:
            time.sleep(0.05)

        engine.drop_restored()  # WITH (FORCE): the session is ended, not waited for

        assert psql("postgres", f"SELECT count(*) FROM pg_database WHERE datname = '{scratch}';").strip() == "0"
    finally:
        session.kill()
        session.wait()


def test_check_tells_a_database_a_restore_will_create_from_a_server_it_cannot_reach(postgres_server: None) -> None:
    missing = PostgresEngine(
        "t",
        PostgresConfig(engine="postgresql", host=PG["host"], port=PG["port"], database=unique("nodb")),
        lambda _r: "",
    )
    assert missing.check() == []
    assert missing.absent is True

    existing = PostgresEngine(
        "t", PostgresConfig(engine="postgresql", host=PG["host"], port=PG["port"], database="postgres"), lambda _r: ""
    )
    assert existing.check() == []
    assert existing.absent is False

    unreachable = PostgresEngine("t", PostgresConfig(engine="postgresql", port=1, database="x"), lambda _r: "")
    problems = unreachable.check()
    assert problems
    assert "cannot connect" in problems[0]
