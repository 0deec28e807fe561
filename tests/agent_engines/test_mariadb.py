"""MariaDB engine against the real local server: dump, validate, restore, option-file passwords."""

from __future__ import annotations

import io
import stat
import time
from pathlib import Path

import pytest

from backup_agent.engines import build_engine
from backup_agent.engines.base import EngineError, InvalidDumpError
from backup_agent.engines.config import MariaDBConfig, SecretRef
from backup_agent.engines.mariadb import MariaDBEngine

from .conftest import MARIADB, mariadb, run_dump, unique, validate

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]

SCHEMA = """
CREATE TABLE items (
    id INT PRIMARY KEY,
    doc JSON,
    payload LONGBLOB,
    seen_at DATETIME(6),
    stamp TIMESTAMP(3) NULL,
    label VARCHAR(200) CHARACTER SET utf8mb4,
    amount DECIMAL(20, 6),
    flag BIT(1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO items VALUES
  (1, '{"a": [1, 2, {"b": null}], "ü": "ñ"}', X'00FF10DEADBEEF0A0D27225C', '2026-01-02 03:04:05.123456',
   '2020-02-29 12:00:00.5', 'žluťoučký kůň 🐎 ''quoted'' \\\\ backslash', 12345678901234.123456, b'1'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, '[]', X'', '1000-01-01 00:00:00', NULL, 'tab\\tnew\\nline', -0.000001, b'0');
INSERT INTO items (id, label, payload) SELECT seq, REPEAT('x', seq % 50), UNHEX(MD5(seq)) FROM seq_4_to_300;
CREATE TABLE `odd ``name`` table` (k VARCHAR(10) PRIMARY KEY, v INT, FOREIGN KEY (v) REFERENCES items(id));
INSERT INTO `odd ``name`` table` VALUES ('one', 1), ('two', 2);
CREATE VIEW item_labels AS SELECT id, label FROM items;
CREATE TRIGGER items_bi BEFORE INSERT ON items FOR EACH ROW SET NEW.label = COALESCE(NEW.label, 'default');
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM items WHERE id < 0;
"""

SNAPSHOT_SQL = """
SELECT id, doc, HEX(payload), seen_at, stamp, label, amount, flag + 0 FROM items ORDER BY id;
SELECT * FROM `odd ``name`` table` ORDER BY k;
SELECT * FROM item_labels ORDER BY id;
SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE();
SELECT routine_name FROM information_schema.routines WHERE routine_schema = DATABASE();
SELECT event_name FROM information_schema.events WHERE event_schema = DATABASE();
"""


def snapshot(db: str) -> str:
    return mariadb(SNAPSHOT_SQL, db)


def engine_for(db: str, resolve=lambda ref: "unused", **overrides) -> MariaDBEngine:
    config = MariaDBConfig(engine="mariadb", database=db, **{**MARIADB, **overrides})
    engine = build_engine("maria-test", config, resolve)
    assert isinstance(engine, MariaDBEngine)
    return engine


@pytest.fixture
def source(maria_databases) -> str:
    name = maria_databases("bk_src")
    mariadb(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4;")
    mariadb(SCHEMA, name)
    return name


def test_dump_passes_validator_and_clone_restore_into_another_name_equals_source(
    source: str,
    maria_databases,
) -> None:
    result = run_dump(engine_for(source))

    assert result.outcome.exit_code == 0, result.outcome.stderr_tail
    assert result.error is None
    assert result.facts is not None
    assert result.facts["create_tables"] == 2
    assert b"CREATE DATABASE" not in result.data
    assert b"\nUSE " not in result.data

    clone = maria_databases("bk clone`s")  # a backtick and a space in the destination name
    report = engine_for(clone).restore(io.BytesIO(result.data), mode="clone")

    assert snapshot(clone) == snapshot(source)
    assert "nightly" in snapshot(clone)
    assert "twice" in snapshot(clone)
    assert "items_bi" in snapshot(clone)
    assert report.verification["rows"] == {"items": 300, "odd `name` table": 2}
    assert report.verification["bytes"] == len(result.data)


def test_in_place_restore_over_changed_data_gives_the_snapshot_back(source: str) -> None:
    before = snapshot(source)
    dump = run_dump(engine_for(source))
    mariadb(
        "UPDATE items SET label = 'changed' WHERE id < 10; DELETE FROM `odd ``name`` table`;"
        " INSERT INTO items (id) VALUES (9999); CREATE TABLE created_later (x INT);",
        source,
    )
    assert snapshot(source) != before

    report = engine_for(source).restore(io.BytesIO(dump.data), mode="in-place")

    assert snapshot(source) == before
    assert report.verification["extra_tables"] == ["created_later"]


def test_clone_refuses_a_destination_that_has_tables(source: str) -> None:
    dump = run_dump(engine_for(source))

    with pytest.raises(EngineError, match="not empty"):
        engine_for(source).restore(io.BytesIO(dump.data), mode="clone")


def test_failed_in_place_restore_says_the_destination_is_partially_restored(source: str) -> None:
    dump = run_dump(engine_for(source)).data

    with pytest.raises(EngineError, match=r"partially restored \(MariaDB DDL is not transactional\)") as info:
        engine_for(source).restore(io.BytesIO(dump[: len(dump) // 2]), mode="in-place")

    assert info.value.stage == "restore"


def test_truncated_dump_is_refused_and_a_created_clone_is_dropped(source: str, maria_databases) -> None:
    dump = run_dump(engine_for(source)).data
    clone = maria_databases("bk_clone")

    with pytest.raises(EngineError, match="dropped again"):
        engine_for(clone).restore(io.BytesIO(dump[: len(dump) // 2]), mode="clone")

    assert mariadb(f"SHOW DATABASES LIKE '{clone}';") == ""


def test_validator_rejects_truncated_empty_and_garbage_streams(source: str) -> None:
    engine = engine_for(source)
    dump = run_dump(engine).data

    for cut in (0, 10, 100, len(dump) // 3, len(dump) // 2, len(dump) - 60, len(dump) - 20):
        with pytest.raises(InvalidDumpError):
            validate(engine, dump[:cut], step=501)
    with pytest.raises(InvalidDumpError):
        validate(engine, b"SELECT 1;\n-- Dump completed on 2026-01-01\n")
    assert validate(engine, dump, step=501)["create_tables"] == 2


@pytest.fixture
def password_user(source: str):
    user = unique("bk_user")[:30]
    password = "p@ss\"w'rd:\\x " + unique("z")
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    mariadb(
        f"CREATE USER '{user}'@'%' IDENTIFIED BY '{escaped}';"
        f" GRANT ALL ON `{source}`.* TO '{user}'@'%'; GRANT PROCESS ON *.* TO '{user}'@'%';"
        f" GRANT SELECT ON mysql.proc TO '{user}'@'%';"
    )
    yield user, password
    mariadb(f"DROP USER IF EXISTS '{user}'@'%';", check=False)


def test_password_reaches_the_dump_tool_only_through_a_private_option_file(
    source: str,
    password_user,
    env_resolve,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, password = password_user
    monkeypatch.setenv("BK_TEST_MYPW", password)
    engine = engine_for(source, env_resolve, user=user, password=SecretRef(env="BK_TEST_MYPW"))
    # hold a metadata lock so that the dump is still running while we inspect it
    locker = __import__("subprocess").Popen(
        ["mariadb", "-h", "127.0.0.1", "-uroot", source, "-e", "LOCK TABLES items WRITE; SELECT SLEEP(1.5);"],
        stdout=__import__("subprocess").DEVNULL,
    )
    time.sleep(0.5)
    running = engine.start_dump()
    time.sleep(0.3)
    argv = Path(f"/proc/{running.pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{running.pid}/environ").read_bytes()
    option_file = Path(argv[1].decode().split("=", 1)[1])
    mode = stat.S_IMODE(option_file.stat().st_mode)
    data = running.stream.read()
    outcome = running.wait()
    locker.wait()

    assert argv[1].startswith(b"--defaults-extra-file=")
    assert not any(password.encode() in arg for arg in argv)
    assert not any(arg.startswith(b"-p") or arg.startswith(b"--password") for arg in argv)
    assert password.encode() not in environ
    assert b"MYSQL_PWD" not in environ
    assert mode == 0o600
    assert outcome.exit_code == 0, outcome.stderr_tail  # the server really checked this password
    assert validate(engine, data)["create_tables"] == 2
    assert not option_file.exists()


def test_wrong_password_fails_with_a_redacted_stderr_tail(
    source: str,
    password_user,
    env_resolve,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, _ = password_user
    monkeypatch.setenv("BK_TEST_MYPW", "wrong-Secret-123")
    engine = engine_for(source, env_resolve, user=user, password=SecretRef(env="BK_TEST_MYPW"))

    result = run_dump(engine)

    assert result.outcome.exit_code != 0
    assert "Access denied" in result.outcome.stderr_tail
    assert "wrong-Secret-123" not in result.outcome.stderr_tail
    assert isinstance(result.error, InvalidDumpError)


def test_check_and_versions_report_a_healthy_target(source: str) -> None:
    engine = engine_for(source)

    assert engine.check() == []
    versions = engine.versions()
    assert versions.tool_version is not None
    assert "Distrib" in versions.tool_version
    assert versions.server_version is not None
    assert "MariaDB" in versions.server_version


def test_check_tells_a_database_a_restore_will_create_from_a_broken_server(mariadb_server: None) -> None:
    missing = engine_for(unique("bk_missing"))

    assert missing.check() == []
    assert missing.absent is True

    unreachable = MariaDBEngine("t", MariaDBConfig(engine="mariadb", database="x", port=1), lambda _ref: "")
    problems = unreachable.check()
    assert problems
    assert "cannot connect" in problems[0]


def test_drop_restored_removes_a_scratch_clone(source: str, maria_databases) -> None:
    dump = run_dump(engine_for(source))
    scratch = maria_databases("bk_drill")
    engine = engine_for(scratch)
    engine.restore(io.BytesIO(dump.data), mode="drill")

    engine.drop_restored()

    assert mariadb(f"SHOW DATABASES LIKE '{scratch}';") == ""
