"""The walk over the archive (``restore/pitr.walk``) alone: which files a replay lists and where it stops."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backup_functions.ledger.wal_items import WalFile
from backup_functions.restore.pitr import walk

from .pitr_world import A_END, PITR, seg

pytestmark = pytest.mark.unit


def row(name: str, minute: int) -> WalFile:
    at = A_END + timedelta(minutes=minute)
    return WalFile(PITR, name, f"k/{name}", "b", "0" * 64, 10, 20, "zstd", at, at)


def test_the_walk_follows_a_promotion_onto_the_new_timeline_with_its_history_file() -> None:
    files = [row(seg(0x10), 1), row(seg(0x11), 2), row(seg(0x12), 3), row("00000002.history", 4)]
    files += [row(seg(0x12, 2), 5), row(seg(0x13, 2), 6)]
    walked = walk(files, seg(0x10), None)
    assert [f.file for f in walked.files] == [
        seg(0x10),
        seg(0x11),
        seg(0x12),
        "00000002.history",
        seg(0x12, 2),
        seg(0x13, 2),
    ]
    assert (walked.last_file, walked.missing) == (seg(0x13, 2), None)


def test_the_walk_stops_at_the_first_missing_segment_and_names_it() -> None:
    walked = walk([row(seg(0x10), 1), row(seg(0x11), 2), row(seg(0x13), 3)], seg(0x10), None)
    assert (walked.last_file, walked.missing, walked.reached) == (seg(0x11), seg(0x12), False)


def test_a_history_file_after_the_stop_is_not_listed() -> None:
    files = [row(seg(0x10), 1), row(seg(0x11), 2), row("00000002.history", 3), row(seg(0x11, 2), 4)]
    walked = walk(files, seg(0x10), lambda segment, _: segment.number >= 0x11)
    assert [f.file for f in walked.files] == [seg(0x10), seg(0x11)]
