"""The ledger's WAL archive: files in name order, the contiguous-through watermark across timelines, the
first missing segment and since when, the server's status and the lag and gap watches (docs/ledger.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backup_contracts import ledger as keys
from backup_contracts.wal import Segment
from backup_functions.ledger.wal import GAP_SK, WATCH_WAL_GAP, WATCH_WAL_LAG
from backup_functions.ledger.wal_order import server_ahead, walk

from .conftest import START, Aws
from .wal_world import WAL_RPO, seg, server_status, wal_archived

pytestmark = pytest.mark.integration

TTL = START + timedelta(days=60)


def record(aws: Aws, *files: str, minutes: float = 0) -> None:
    for i, file in enumerate(files):
        at = START + timedelta(minutes=minutes + i)
        aws.ledger.wal.record_file(wal_archived(aws, file, at), recorded_at=at, wal_rpo=WAL_RPO, expires_at=TTL)


def test_files_come_back_in_name_order_from_a_given_file(aws):
    record(aws, seg(3), seg(1), seg(2), "00000002.history", seg(4, timeline=2))

    names = [f.file for f in aws.ledger.wal.files("orders-pitr", seg(2))]

    assert names == [seg(2), seg(3), "00000002.history", seg(4, timeline=2)]
    first = next(aws.ledger.wal.files("orders-pitr", seg(1)))
    assert (first.file, first.bytes_in, first.compression) == (seg(1), 16 * 1024 * 1024, "zst")
    assert first.key == f"agents/db-1/orders-pitr/wal/{seg(1)}.zst"


def test_a_redelivered_file_is_recorded_once(aws):
    archived = wal_archived(aws, seg(1))
    ledger = aws.ledger.wal
    assert ledger.record_file(archived, recorded_at=START, wal_rpo=WAL_RPO, expires_at=TTL) is True
    before = ledger.archive("orders-pitr")
    assert (
        ledger.record_file(archived, recorded_at=START + timedelta(hours=1), wal_rpo=WAL_RPO, expires_at=TTL) is False
    )
    assert ledger.archive("orders-pitr") == before
    assert ledger.file("orders-pitr", seg(1)).recorded_at == START


def test_the_watermark_follows_contiguous_segments_and_the_newest_file(aws):
    record(aws, seg(1), seg(2), seg(3))

    archive = aws.ledger.wal.archive("orders-pitr")

    assert (archive.contiguous_through, archive.newest_file) == (seg(3), seg(3))
    assert archive.newest_archived_at == START + timedelta(minutes=2)
    assert archive.first_missing is None


def test_a_missing_segment_with_later_ones_is_a_gap_since_the_later_one_arrived(aws):
    record(aws, seg(1), seg(2))
    record(aws, seg(4), seg(5), minutes=10)

    archive = aws.ledger.wal.archive("orders-pitr")

    assert (archive.contiguous_through, archive.first_missing, archive.newest_file) == (seg(2), seg(3), seg(5))
    assert archive.gap_since == START + timedelta(minutes=10)
    assert archive.gap_later_file == seg(4)
    gap = aws.ledger.wal.gap("orders-pitr")
    assert (gap.first_missing, gap.watch_kind, gap.closed) == (seg(3), WATCH_WAL_GAP, False)
    assert gap.watch_deadline == archive.gap_since + WAL_RPO


def test_the_missing_segment_arriving_closes_the_gap_and_moves_the_watermark_past_it(aws):
    record(aws, seg(1), seg(2), seg(4), seg(5))
    record(aws, seg(3), minutes=20)

    archive = aws.ledger.wal.archive("orders-pitr")

    assert (archive.contiguous_through, archive.first_missing) == (seg(5), None)
    gap = aws.ledger.wal.gap("orders-pitr")
    assert gap.closed is True
    assert gap.watch_deadline is None


def test_a_newer_timeline_restarts_the_watermark_at_its_first_segment(aws):
    # promoted in segment 3: timeline 1 ends with 3.partial, timeline 2 begins in segment 3
    record(aws, seg(1), seg(2), seg(3) + ".partial", "00000002.history", seg(3, timeline=2), seg(4, timeline=2))

    archive = aws.ledger.wal.archive("orders-pitr")

    assert (archive.contiguous_through, archive.first_missing) == (seg(4, timeline=2), None)


def test_a_newer_timeline_starting_after_a_missing_segment_is_a_gap(aws):
    record(aws, seg(1), seg(2), seg(5, timeline=2))

    archive = aws.ledger.wal.archive("orders-pitr")

    assert (archive.contiguous_through, archive.first_missing) == (seg(2), seg(3))


def test_the_archive_starts_at_the_base_backups_first_segment(aws):
    ledger = aws.ledger.wal
    ledger.base_backup("orders-pitr", "db-1", start_file=seg(5), good_at=START, wal_rpo=WAL_RPO)
    record(aws, seg(2), seg(6), seg(7))

    archive = ledger.archive("orders-pitr")

    assert (archive.start_file, archive.contiguous_through, archive.first_missing) == (seg(5), None, seg(5))
    record(aws, seg(5), minutes=30)
    assert ledger.archive("orders-pitr").contiguous_through == seg(7)


def test_a_base_backup_after_the_gap_restarts_the_archive_there(aws):
    ledger = aws.ledger.wal
    record(aws, seg(1), seg(2), seg(4), seg(5), seg(6))
    assert ledger.archive("orders-pitr").first_missing == seg(3)

    ledger.base_backup("orders-pitr", "db-1", start_file=seg(5), good_at=START + timedelta(hours=1), wal_rpo=WAL_RPO)

    archive = ledger.archive("orders-pitr")
    assert (archive.start_file, archive.contiguous_through, archive.first_missing) == (seg(5), seg(6), None)
    assert ledger.gap("orders-pitr").closed is True


def test_the_server_ahead_of_the_archive_sets_the_lag_watch_from_the_newest_archived_file(aws):
    ledger = aws.ledger.wal
    record(aws, seg(1), seg(2))  # newest archived at START + 1 min
    ledger.record_server_status("db-1", server_status(seg(3), START + timedelta(minutes=2)), wal_rpo=WAL_RPO)
    assert ledger.archive("orders-pitr").watch_deadline is None  # writing the next one: not behind

    ledger.record_server_status("db-1", server_status(seg(6), START + timedelta(minutes=3)), wal_rpo=WAL_RPO)

    archive = ledger.archive("orders-pitr")
    assert archive.server_ahead
    assert archive.behind_since == START + timedelta(minutes=3)
    assert (archive.watch_kind, archive.watch_deadline) == (WATCH_WAL_LAG, START + timedelta(minutes=3) + WAL_RPO)
    record(aws, seg(3), seg(4), seg(5), minutes=4)
    archive = ledger.archive("orders-pitr")
    assert (archive.watch_deadline, archive.behind_since) == (None, None)


def test_an_older_server_status_never_replaces_a_newer_one(aws):
    ledger = aws.ledger.wal
    ledger.record_server_status("db-1", server_status(seg(9), START + timedelta(minutes=5)), wal_rpo=WAL_RPO)
    ledger.record_server_status("db-1", server_status(seg(2), START), wal_rpo=WAL_RPO)

    assert ledger.archive("orders-pitr").server_current_file == seg(9)


def test_a_good_base_backup_without_any_wal_is_watched_from_its_end(aws):
    ledger = aws.ledger.wal
    ledger.base_backup("orders-pitr", "db-1", start_file=seg(5), good_at=START, wal_rpo=WAL_RPO)

    archive = ledger.archive("orders-pitr")

    assert (archive.watch_kind, archive.watch_deadline) == (WATCH_WAL_LAG, START + WAL_RPO)
    record(aws, seg(5), minutes=1)
    assert ledger.archive("orders-pitr").watch_deadline is None


def test_items_are_the_documented_ones(aws):
    record(aws, seg(1), seg(3))
    sks = [item[keys.SK] for item in aws.scan() if item[keys.PK] == keys.target_pk("orders-pitr")]
    assert sks == [f"WAL#{seg(1)}", f"WAL#{seg(3)}", "WALARCHIVE", GAP_SK]


@pytest.mark.parametrize(
    ("through", "rows", "expected"),
    [
        (None, [seg(1), seg(2)], (seg(2), None)),
        (seg(2), [seg(3), seg(5)], (seg(3), seg(4))),
        (seg(2), [seg(3) + ".partial", seg(3, 2), seg(4, 2)], (seg(4, 2), None)),
        (seg(2), [seg(4, 2)], (seg(2), seg(3))),
    ],
)
def test_walk(through, rows, expected):
    moved = walk(through, None, [(name, START) for name in rows])
    assert (moved.through, moved.first_missing) == expected


def test_server_ahead_counts_completed_segments_only():
    assert not server_ahead(seg(3), seg(2))
    assert server_ahead(seg(4), seg(2))
    assert not server_ahead(seg(3, 2), seg(2))  # a new timeline begun in the next segment


def test_a_gap_found_before_the_newest_base_backups_start_restarts_the_archive_there(aws):
    ledger = aws.ledger.wal
    record(aws, seg(1), seg(2))  # then archiving broke; a new base backup starts in segment 10
    ledger.base_backup("orders-pitr", "db-1", start_file=seg(10), good_at=START + timedelta(hours=1), wal_rpo=WAL_RPO)
    record(aws, seg(10), seg(11), minutes=70)

    archive = ledger.archive("orders-pitr")

    assert (archive.start_file, archive.contiguous_through, archive.first_missing) == (seg(10), seg(11), None)


def test_a_status_while_only_a_history_file_is_archived_is_recorded(aws):
    ledger = aws.ledger.wal
    record(aws, "00000002.history")
    ledger.record_server_status(
        "db-1", server_status(seg(9, timeline=2), START + timedelta(minutes=1)), wal_rpo=WAL_RPO
    )

    assert ledger.archive("orders-pitr").server_current_file == seg(9, timeline=2)


def test_the_watermark_follows_the_servers_segment_size(aws):
    ledger = aws.ledger.wal
    size = 64 * 1024 * 1024  # initdb --wal-segsize=64: 64 segments per log, ...0000003F then ...0100000000
    ledger.base_backup("orders-pitr", "db-1", start_file=None, good_at=START, wal_rpo=WAL_RPO, segment_size=size)
    names = [Segment(1, n, size).name for n in (62, 63, 64, 65)]
    record(aws, *names)

    archive = ledger.archive("orders-pitr")

    assert names[2] == "000000010000000100000000"
    assert (archive.contiguous_through, archive.first_missing) == (names[-1], None)
