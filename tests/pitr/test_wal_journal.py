"""The WAL journal on its own: entries survive as whole files, owed events are listed in WAL order and
paid once, pruning keeps what a retry or the bus may still need, and a name that is not a WAL file is
never used as a path."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from backup_agent.wal.journal import Entry, JournalError, WalJournal

pytestmark = pytest.mark.unit

SEG = "000000010000000000000007"


def entry(name: str = SEG, state: str = "pending") -> Entry:
    return Entry(
        file=name,
        state=state,  # type: ignore[arg-type]
        raw_sha256="a" * 64,
        sha256="b" * 64,
        bytes_in=16 << 20,
        bytes_stored=1234,
        key=f"agents/h/t/wal/{name}.zst",
        compression="zstd-1",
    )


def test_an_entry_reads_back_as_written_and_a_later_state_replaces_it(tmp_path: Path) -> None:
    journal = WalJournal(tmp_path, "orders-pitr")

    pending = journal.record(entry())
    stored = journal.record(pending.stored())

    assert journal.get(SEG) == stored
    assert stored.state == "stored"
    assert stored.raw_sha256 == pending.raw_sha256
    assert (journal.entries / f"{SEG}.json").stat().st_mode & 0o777 == 0o600
    assert list(journal.temporary_files()) == []


def test_a_torn_or_foreign_entry_counts_as_none(tmp_path: Path) -> None:
    journal = WalJournal(tmp_path, "orders-pitr")
    (journal.entries / f"{SEG}.json").write_text('{"file": "0000')

    assert journal.get(SEG) is None


def test_owed_events_come_in_wal_order_and_a_paid_one_is_gone(tmp_path: Path) -> None:
    journal = WalJournal(tmp_path, "orders-pitr")
    for name in ("000000010000000000000009", SEG, "000000010000000000000008"):
        journal.owe(name, {"file": name})

    assert [name for name, _ in journal.owed()] == [SEG, "000000010000000000000008", "000000010000000000000009"]
    journal.paid("000000010000000000000008")
    journal.paid("000000010000000000000008")  # twice: harmless
    assert [name for name, _ in journal.owed(limit=1)] == [SEG]
    assert not journal.is_owed("000000010000000000000008")


def test_pruning_keeps_pending_entries_owed_events_and_anything_recent(tmp_path: Path) -> None:
    journal = WalJournal(tmp_path, "orders-pitr")
    old = time.time() - timedelta(days=8).total_seconds()
    names = {"stored-old": "000000010000000000000001", "owed-old": "000000010000000000000002"}
    names |= {"pending-old": "000000010000000000000003", "stored-new": "000000010000000000000004"}
    for label, name in names.items():
        journal.record(entry(name, "pending" if label.startswith("pending") else "stored"))
        if label.endswith("old"):
            os.utime(journal.entries / f"{name}.json", (old, old))
    journal.owe(names["owed-old"], {"file": names["owed-old"]})

    assert journal.prune() == 1

    assert journal.get(names["stored-old"]) is None
    assert all(journal.get(names[label]) is not None for label in ("owed-old", "pending-old", "stored-new"))


def test_a_name_that_is_not_a_wal_file_is_never_a_path(tmp_path: Path) -> None:
    journal = WalJournal(tmp_path, "orders-pitr")

    for bad in ("../../etc/passwd", "RECOVERYXLOG", ""):
        with pytest.raises(ValueError, match="not a WAL file name"):
            journal.get(bad)


def test_an_unwritable_state_dir_names_the_user_to_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")

    with pytest.raises(JournalError, match="writable by the user PostgreSQL runs archive_command as"):
        WalJournal(blocker, "orders-pitr")
