"""SQLite engine: consistent online copy under concurrent writes, validated streams, atomic restores."""

from __future__ import annotations

import io
import sqlite3
import threading
from pathlib import Path

import pytest

from backup_agent.engines import build_engine
from backup_agent.engines.base import EngineError, InvalidDumpError
from backup_agent.engines.config import SQLiteConfig
from backup_agent.engines.sqlite import SQLiteEngine

from .conftest import run_dump, validate

pytestmark = pytest.mark.integration


def engine_for(path: Path, tmp_path: Path | None = None) -> SQLiteEngine:
    config = SQLiteConfig(engine="sqlite", path=path, temp_dir=tmp_path)
    engine = build_engine("sqlite-test", config, lambda ref: "unused")
    assert isinstance(engine, SQLiteEngine)
    return engine


def make_db(path: Path, *, wal: bool = True) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(
        """
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
        CREATE TABLE ledger (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER, amount INTEGER, note TEXT);
        CREATE TABLE misc (id INTEGER PRIMARY KEY, data BLOB, label TEXT, value REAL);
        CREATE INDEX ledger_src ON ledger(src);
        """
    )
    conn.executemany("INSERT INTO accounts VALUES (?, ?)", [(i, 1000) for i in range(100)])
    conn.executemany(
        "INSERT INTO misc VALUES (?, ?, ?, ?)",
        [(1, b"\x00\xff\x10" * 100, "žluťoučký kůň 🐎", 1.5), (2, None, None, None), (3, b"", "", -0.0)],
    )
    conn.commit()
    conn.close()


def rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("accounts", "ledger", "misc")
        }
    finally:
        conn.close()


def test_online_copy_while_another_thread_keeps_writing_is_consistent(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    make_db(db)
    stop = threading.Event()
    transfers = [0]

    def writer() -> None:
        conn = sqlite3.connect(db, timeout=30)
        i = 0
        while not stop.is_set():
            i += 1
            src, dst = i % 100, (i * 7 + 1) % 100
            with conn:  # one transaction per transfer: the sum of balances never changes
                conn.execute("UPDATE accounts SET balance = balance - 5 WHERE id = ?", (src,))
                conn.execute("UPDATE accounts SET balance = balance + 5 WHERE id = ?", (dst,))
                conn.execute("INSERT INTO ledger (src, dst, amount, note) VALUES (?, ?, 5, ?)", (src, dst, "x" * 200))
            transfers[0] = i
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while transfers[0] < 200:
            threading.Event().wait(0.01)
        result = run_dump(engine_for(db, tmp_path))
        during = transfers[0]
        while transfers[0] < during + 200:
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join()

    assert result.outcome.exit_code == 0, result.outcome.stderr_tail
    assert result.error is None
    copy = tmp_path / "copy.db"
    copy.write_bytes(result.data)
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT sum(balance) FROM accounts").fetchone() == (100_000,)
    copied_transfers = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    assert 200 <= copied_transfers < transfers[0]
    # every balance agrees with the ledger rows committed in the same transactions
    mismatched = conn.execute(
        """SELECT count(*) FROM accounts a WHERE a.balance != 1000
             - 5 * (SELECT count(*) FROM ledger WHERE src = a.id)
             + 5 * (SELECT count(*) FROM ledger WHERE dst = a.id)"""
    ).fetchone()[0]
    conn.close()
    assert mismatched == 0
    assert list(tmp_path.glob(".backup-agent-*")) == []  # the staged copy was removed


def test_clone_restore_gives_an_equal_database_and_reports_counts(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    make_db(db)
    dump = run_dump(engine_for(db, tmp_path))
    clone = tmp_path / "restored" / "clone.db"

    report = engine_for(clone).restore(io.BytesIO(dump.data), mode="clone")

    assert rows(clone) == rows(db)
    assert report.verification["integrity_check"] == "ok"
    assert report.verification["rows"] == {"accounts": 100, "ledger": 0, "misc": 3}
    assert sorted(p.name for p in clone.parent.iterdir()) == ["clone.db"]


def test_clone_refuses_an_existing_destination(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    make_db(db)
    dump = run_dump(engine_for(db, tmp_path))

    with pytest.raises(EngineError, match="already exists"):
        engine_for(db).restore(io.BytesIO(dump.data), mode="clone")
    assert rows(db)["accounts"][0] == (0, 1000)


def test_in_place_restore_replaces_a_wal_database_and_removes_stale_side_files(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db)
    snapshot = rows(db)
    dump = run_dump(engine_for(db, tmp_path))
    # the application changes data, then "crashes", leaving a non-empty WAL and its shm behind
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE accounts SET balance = 0")
    conn.execute("DELETE FROM misc")
    conn.commit()
    assert rows(db) != snapshot
    wal = (tmp_path / "app.db-wal").read_bytes()
    conn.close()
    (tmp_path / "app.db-wal").write_bytes(wal)
    (tmp_path / "app.db-shm").write_bytes(b"")
    assert len(wal) > 0

    report = engine_for(db).restore(io.BytesIO(dump.data), mode="in-place")

    assert rows(db) == snapshot
    assert report.verification["integrity_check"] == "ok"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".app.db", "app.db-")))
    assert leftovers == []


def test_in_place_restore_of_a_truncated_stream_leaves_the_destination_untouched(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db, wal=False)
    dump = run_dump(engine_for(db, tmp_path)).data
    before = db.read_bytes()

    with pytest.raises(EngineError, match="truncated"):
        engine_for(db).restore(io.BytesIO(dump[: len(dump) - 100]), mode="in-place")

    assert db.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".app.db")] == []


def test_validator_rejects_truncated_empty_and_garbage_streams(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    make_db(db)
    engine = engine_for(db, tmp_path)
    dump = run_dump(engine).data

    for cut in (0, 16, 99, 100, 4096, len(dump) // 2, len(dump) - 4096, len(dump) - 1):
        with pytest.raises(InvalidDumpError):
            validate(engine, dump[:cut])
    with pytest.raises(InvalidDumpError):
        validate(engine, b"not a database" * 1000)
    assert validate(engine, dump)["pages"] == len(dump) // 4096


def test_missing_source_fails_the_dump_instead_of_creating_an_empty_database(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"

    result = run_dump(engine_for(missing, tmp_path))

    assert result.outcome.exit_code != 0
    assert "does not exist" in result.outcome.stderr_tail
    assert not missing.exists()
    assert engine_for(missing).check()


def test_check_is_clean_for_a_readable_database(tmp_path: Path) -> None:
    db = tmp_path / "ok.db"
    make_db(db)

    assert engine_for(db, tmp_path).check() == []


def test_drop_restored_removes_a_scratch_copy_and_its_side_files(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    make_db(db)
    scratch = tmp_path / "drill" / "scratch.db"
    engine = engine_for(scratch)
    engine.restore(io.BytesIO(run_dump(engine_for(db, tmp_path)).data), mode="drill")
    Path(f"{scratch}-wal").write_bytes(b"")

    engine.drop_restored()

    assert list(scratch.parent.iterdir()) == []
