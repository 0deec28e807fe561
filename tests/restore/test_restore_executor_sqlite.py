"""The agent's restore executor on SQLite, with backups made by the agent's real pipeline in a moto
server and restores fetched through presigned URLs: round trips, safety backups, tampering, drills."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from backup_contracts.events import BackupSucceeded, RestoreFailed, RestoreStarted, RestoreSucceeded

from .agent_world import AgentWorld

pytestmark = pytest.mark.integration


def _make_db(path: Path, rows: list[tuple[int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO items VALUES (?, ?)", rows)
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()


def _snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: list(conn.execute(f'SELECT * FROM "{t}" ORDER BY 1')) for t in tables}
    finally:
        conn.close()


ROWS = [(i, f"item-{i}") for i in range(1, 501)]


@pytest.fixture
def sqlite_world(agent_world: AgentWorld, tmp_path: Path) -> AgentWorld:
    agent_world.targets = {
        "app": {"engine": "sqlite", "path": str(tmp_path / "app" / "app.db")},
        "app-clone": {"engine": "sqlite", "path": str(tmp_path / "clone" / "app.db")},
        "app-drill": {"engine": "sqlite", "path": str(tmp_path / "drill" / "app.db")},
        "gone": {"engine": "sqlite", "path": str(tmp_path / "gone" / "missing.db")},
    }
    _make_db(tmp_path / "app" / "app.db", ROWS)
    return agent_world


def _change(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM items WHERE id > 100")
    conn.execute("UPDATE items SET name = 'changed' WHERE id = 1")
    conn.execute("DROP TABLE notes")
    conn.commit()
    conn.close()


def test_clone_restore_reproduces_the_backed_up_data_in_the_clone(sqlite_world: AgentWorld, tmp_path: Path) -> None:
    source = tmp_path / "app" / "app.db"
    snapshot = _snapshot(source)
    backup = sqlite_world.backup("app")
    _change(source)

    outcome = sqlite_world.restore(sqlite_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert outcome.ok, outcome.event
    assert _snapshot(tmp_path / "clone" / "app.db") == snapshot
    assert _snapshot(source) != snapshot  # the source itself was not touched
    assert isinstance(outcome.event, RestoreSucceeded)
    assert outcome.event.verification["checks"]["integrity_check"] == "ok"
    assert outcome.event.safety_backup_run_id is None
    assert sqlite_world.types()[-2:] == ["RestoreStarted", "RestoreSucceeded"]


def test_in_place_restore_takes_a_safety_backup_first_that_restores_the_pre_restore_state(
    sqlite_world: AgentWorld, tmp_path: Path
) -> None:
    source = tmp_path / "app" / "app.db"
    snapshot = _snapshot(source)
    backup = sqlite_world.backup("app")
    _change(source)
    pre_restore = _snapshot(source)

    outcome = sqlite_world.restore(sqlite_world.restore_job(backup, destination="app", mode="in-place"))

    assert outcome.ok, outcome.event
    assert _snapshot(source) == snapshot
    assert isinstance(outcome.event, RestoreSucceeded)
    safety_id = outcome.event.safety_backup_run_id
    safety = [e for e in sqlite_world.events.events if isinstance(e, BackupSucceeded) and e.run_id == safety_id]
    assert len(safety) == 1
    assert safety[0].trigger == "pre-restore"
    assert safety[0].target == "app"
    # undo: restoring the safety backup in place gives back the state before the restore
    undo = sqlite_world.restore(sqlite_world.restore_job(safety[0], destination="app", mode="in-place"))
    assert undo.ok, undo.event
    assert _snapshot(source) == pre_restore


def test_the_events_say_started_then_succeeded_with_duration(sqlite_world: AgentWorld) -> None:
    backup = sqlite_world.backup("app")

    sqlite_world.restore(sqlite_world.restore_job(backup, destination="app-clone", mode="clone"))

    *_, started, succeeded = sqlite_world.events.events
    assert isinstance(started, RestoreStarted)
    assert isinstance(succeeded, RestoreSucceeded)
    assert started.restore_id == succeeded.restore_id
    assert succeeded.duration_s >= 0
    assert succeeded.source_run_id == backup.run_id


def test_an_object_changed_in_s3_after_the_backup_fails_verification_before_the_destination_is_touched(
    sqlite_world: AgentWorld, tmp_path: Path
) -> None:
    source = tmp_path / "app" / "app.db"
    backup = sqlite_world.backup("app")
    _change(source)
    before = source.read_bytes()
    stored = sqlite_world.s3.get_object(Bucket=backup.bucket, Key=backup.key)["Body"].read()
    tampered = bytearray(stored)
    tampered[len(tampered) // 2] ^= 0xFF  # same size, one byte flipped
    sqlite_world.s3.put_object(Bucket=backup.bucket, Key=backup.key, Body=bytes(tampered))
    job = sqlite_world.restore_job(backup, destination="app", mode="in-place", use_version=False)

    outcome = sqlite_world.restore(job)

    assert isinstance(outcome.event, RestoreFailed)
    assert outcome.event.stage == "verify-object"
    assert outcome.event.destination_touched is False
    assert "SHA-256" in outcome.event.error
    assert source.read_bytes() == before
    assert outcome.safety_backup is None  # verification comes before anything else
    assert not [e for e in sqlite_world.events.events if isinstance(e, BackupSucceeded) and e.trigger == "pre-restore"]


def test_a_wrong_checksum_in_the_job_fails_verification_and_creates_no_clone(
    sqlite_world: AgentWorld, tmp_path: Path
) -> None:
    backup = sqlite_world.backup("app")
    job = sqlite_world.restore_job(backup, destination="app-clone", mode="clone", sha256="0" * 64)

    outcome = sqlite_world.restore(job)

    assert isinstance(outcome.event, RestoreFailed)
    assert (outcome.event.stage, outcome.event.destination_touched) == ("verify-object", False)
    assert not (tmp_path / "clone" / "app.db").exists()


def test_a_truncated_object_fails_verification(sqlite_world: AgentWorld, tmp_path: Path) -> None:
    backup = sqlite_world.backup("app")
    stored = sqlite_world.s3.get_object(Bucket=backup.bucket, Key=backup.key)["Body"].read()
    sqlite_world.s3.put_object(Bucket=backup.bucket, Key=backup.key, Body=stored[:-10])
    job = sqlite_world.restore_job(backup, destination="app-clone", mode="clone", use_version=False)

    outcome = sqlite_world.restore(job)

    assert isinstance(outcome.event, RestoreFailed)
    assert outcome.event.stage == "verify-object"
    assert "bytes" in outcome.event.error
    assert not (tmp_path / "clone" / "app.db").exists()


def test_a_failed_safety_backup_aborts_the_in_place_restore_untouched(sqlite_world: AgentWorld, tmp_path: Path) -> None:
    backup = sqlite_world.backup("app")
    # "gone" is configured but its file does not exist: its safety backup (a dump) fails
    job = sqlite_world.restore_job(backup, destination="gone", mode="in-place")

    outcome = sqlite_world.restore(job)

    assert isinstance(outcome.event, RestoreFailed)
    assert outcome.event.stage == "safety-backup"
    assert outcome.event.destination_touched is False
    assert "restore aborted" in outcome.event.error
    assert not (tmp_path / "gone" / "missing.db").exists()


def test_an_unreachable_object_fails_at_download_untouched(sqlite_world: AgentWorld, tmp_path: Path) -> None:
    backup = sqlite_world.backup("app")
    url = sqlite_world.presign(backup.key + ".nope", None)
    job = sqlite_world.restore_job(backup, destination="app-clone", mode="clone", url=url)

    outcome = sqlite_world.restore(job)

    assert isinstance(outcome.event, RestoreFailed)
    assert (outcome.event.stage, outcome.event.destination_touched) == ("download", False)
    assert "HTTP 404" in outcome.event.error
    assert "X-Amz-Signature" not in outcome.event.error  # the URL's signature is never reported


def test_a_clone_into_a_destination_with_data_replaces_it_after_a_safety_backup(
    sqlite_world: AgentWorld, tmp_path: Path
) -> None:
    snapshot = _snapshot(tmp_path / "app" / "app.db")
    backup = sqlite_world.backup("app")
    clone = tmp_path / "clone" / "app.db"
    _make_db(clone, [(1, "precious")])
    before = _snapshot(clone)

    outcome = sqlite_world.restore(sqlite_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert outcome.ok, outcome.event
    assert _snapshot(clone) == snapshot
    assert isinstance(outcome.event, RestoreSucceeded)
    assert outcome.event.verification["checks"]["replaced_existing"] is True
    safety = next(
        e for e in sqlite_world.events.events if isinstance(e, BackupSucceeded) and e.trigger == "pre-restore"
    )
    assert (safety.target, safety.run_id) == ("app-clone", outcome.event.safety_backup_run_id)
    # the replaced data is recoverable from that safety backup
    sqlite_world.targets["check"] = {"engine": "sqlite", "path": str(tmp_path / "check" / "app.db")}
    check = sqlite_world.restore(sqlite_world.restore_job(safety, destination="check", mode="clone"))
    assert check.ok, check.event
    assert _snapshot(tmp_path / "check" / "app.db") == before


def test_a_clone_into_a_destination_whose_safety_backup_fails_is_aborted_untouched(
    sqlite_world: AgentWorld, tmp_path: Path
) -> None:
    backup = sqlite_world.backup("app")
    clone = tmp_path / "clone" / "app.db"
    clone.parent.mkdir(parents=True)
    clone.write_bytes(b"not a database at all, but someone's data" * 10)

    outcome = sqlite_world.restore(sqlite_world.restore_job(backup, destination="app-clone", mode="clone"))

    assert isinstance(outcome.event, RestoreFailed)
    assert (outcome.event.stage, outcome.event.destination_touched) == ("safety-backup", False)
    assert clone.read_bytes() == b"not a database at all, but someone's data" * 10


def test_a_destination_this_host_does_not_have_fails_at_config(sqlite_world: AgentWorld) -> None:
    backup = sqlite_world.backup("app")
    job = sqlite_world.restore_job(backup, destination="app-clone", mode="clone")
    job = job.model_copy(update={"destination": "elsewhere"})

    outcome = sqlite_world.restore(job)

    assert isinstance(outcome.event, RestoreFailed)
    assert outcome.event.stage == "config"
    assert "elsewhere" in outcome.event.error


def test_a_drill_restores_verifies_and_cleans_up_the_scratch_destination(
    sqlite_world: AgentWorld, tmp_path: Path
) -> None:
    backup = sqlite_world.backup("app")
    job = sqlite_world.restore_job(backup, destination="app-drill", mode="drill", kind="drill")

    outcome = sqlite_world.restore(job)

    assert outcome.ok, outcome.event
    assert isinstance(outcome.event, RestoreSucceeded)
    assert outcome.event.mode == "drill"
    assert outcome.event.verification["total_rows"] == len(ROWS) + 1
    assert outcome.event.verification["checks"]["bytes"] > 0
    assert "removed" in outcome.event.verification["checks"]["cleanup"]
    assert not (tmp_path / "drill" / "app.db").exists()


def test_a_drill_into_a_scratch_destination_that_holds_data_keeps_it_restored(
    sqlite_world: AgentWorld, tmp_path: Path
) -> None:
    backup = sqlite_world.backup("app")
    _make_db(tmp_path / "drill" / "app.db", [(1, "old scratch")])

    outcome = sqlite_world.restore(
        sqlite_world.restore_job(backup, destination="app-drill", mode="drill", kind="drill")
    )

    assert outcome.ok, outcome.event
    assert isinstance(outcome.event, RestoreSucceeded)
    assert outcome.event.verification["checks"]["cleanup"].startswith("kept")
    assert len(_snapshot(tmp_path / "drill" / "app.db")["items"]) == len(ROWS)


def test_a_second_drill_runs_again_after_the_cleanup(sqlite_world: AgentWorld) -> None:
    backup = sqlite_world.backup("app")
    first = sqlite_world.restore(sqlite_world.restore_job(backup, destination="app-drill", mode="drill", kind="drill"))

    second = sqlite_world.restore(sqlite_world.restore_job(backup, destination="app-drill", mode="drill", kind="drill"))

    assert first.ok
    assert second.ok


def test_a_transient_download_error_is_retried(sqlite_world: AgentWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    from backup_agent import restore as restore_module
    from backup_agent.restore import source as source_module

    backup = sqlite_world.backup("app")
    calls: list[str] = []

    def flaky(url: str, timeout: float) -> Any:
        calls.append(url)
        if len(calls) == 1:
            raise urllib.error.HTTPError(url, 503, "Slow Down", {}, None)  # type: ignore[arg-type]
        return restore_module.open_url(url, timeout)

    monkeypatch.setattr(source_module.time, "sleep", lambda _seconds: None)

    outcome = sqlite_world.restore(
        sqlite_world.restore_job(backup, destination="app-clone", mode="clone"), opener=flaky
    )

    assert outcome.ok, outcome.event
    assert len(calls) == 2


def test_sigterm_during_the_download_stops_before_the_destination_is_touched(
    sqlite_world: AgentWorld, tmp_path: Path
) -> None:
    import threading

    from backup_agent import restore as restore_module

    backup = sqlite_world.backup("app")
    cancel = threading.Event()

    def cancelling(url: str, timeout: float) -> Any:
        cancel.set()  # SIGTERM arrives while the object streams in
        return restore_module.open_url(url, timeout)

    outcome = sqlite_world.restore(
        sqlite_world.restore_job(backup, destination="app-clone", mode="clone"), opener=cancelling, cancel=cancel
    )

    assert isinstance(outcome.event, RestoreFailed)
    assert (outcome.event.stage, outcome.event.destination_touched) == ("download", False)
    assert not (tmp_path / "clone" / "app.db").exists()


def test_a_retry_after_a_crash_mid_restore_that_cannot_finish_says_the_destination_was_touched(
    sqlite_world: AgentWorld,
) -> None:
    backup = sqlite_world.backup("app")
    url = sqlite_world.presign(backup.key + ".expired", None)  # the redelivered job's object is no longer readable
    job = sqlite_world.restore_job(backup, destination="app-clone", mode="clone", url=url)
    marker = sqlite_world.state_dir / "restores" / f"{job.job_id}.writing"
    marker.parent.mkdir(parents=True)
    marker.write_text("2026-11-22T12:00:00+00:00")  # what a kill -9 during the engine's restore leaves behind

    outcome = sqlite_world.restore(job)

    assert isinstance(outcome.event, RestoreFailed)
    assert (outcome.event.stage, outcome.event.destination_touched) == ("download", True)
    assert "half-restored" in outcome.event.error
    assert not marker.exists()  # reported once


def test_a_finished_restore_leaves_no_crash_marker(sqlite_world: AgentWorld) -> None:
    backup = sqlite_world.backup("app")
    job = sqlite_world.restore_job(backup, destination="app-clone", mode="clone")

    outcome = sqlite_world.restore(job)

    assert outcome.ok
    assert not (sqlite_world.state_dir / "restores" / f"{job.job_id}.writing").exists()


def test_verification_of_a_database_with_many_tables_stays_small() -> None:
    from backup_agent.restore import compact_verification

    rows = {f"public.t{i}": i for i in range(5000)}
    compact = compact_verification({"tables": 5000, "rows": rows, "extra_tables": [f"x{i}" for i in range(900)]})

    assert len(compact["rows"]) == 50
    assert compact["rows"]["public.t4999"] == 4999
    assert "5000 tables" in compact["rows_note"]
    assert len(compact["extra_tables"]) == 51
    assert compact["tables"] == 5000
