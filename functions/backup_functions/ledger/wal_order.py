"""How far a target's WAL archive is contiguous, and when it lags its server (plain Python, no AWS).

The ledger's archive summary (``ledger/wal.py``) keeps a *watermark*: the newest segment up to which every
segment is archived, counted from the archive's start (the first recorded segment, or a good base backup's
first segment once one is known). ``walk`` moves it over the recorded files in name order (which is
``(timeline, segment)`` order): the next segment on the same timeline extends it, and so does the first
segment of a newer timeline when it starts at or before the next one (a promotion: the new timeline begins
in the segment where the old one was switched from). Any other later segment is a *gap*: the segment after
the watermark is missing while a later one is recorded; point-in-time restores cannot replay past it.

Segment numbers follow the server's WAL segment size (``wal_segment_size`` in a base backup's manifest;
16 MiB unless ``initdb --wal-segsize`` said otherwise). Files that are not full segments (``.history``,
``.partial``, ``.backup``) are recorded but never move the watermark. Segments before the archive's start
are not needed by any base backup and are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from backup_contracts.wal import DEFAULT_SEGMENT_SIZE, Segment, is_segment, parse_segment


@dataclass(frozen=True)
class Walk:
    """Where a walk over the recorded files stopped."""

    through: str | None  # the watermark (None: the archive's first segment is not recorded yet)
    through_at: datetime | None  # its archived_at
    first_missing: str | None = None  # the segment after the watermark, missing while a later one is there
    later_file: str | None = None  # the first later segment recorded (what reveals the gap)
    later_at: datetime | None = None


def restarts(previous: Segment, segment: Segment) -> bool:
    """``segment`` begins a newer timeline where ``previous``'s left off (at or before its next segment)."""
    return segment.timeline > previous.timeline and segment.number <= previous.number + 1


def continues(last: Segment, segment: Segment) -> bool:
    """``segment`` is the one replay needs after ``last``: the next on its timeline, or a newer timeline's start."""
    return segment == last.next() or restarts(last, segment)


def extends(through: str | None, start: str | None, name: str, size: int = DEFAULT_SEGMENT_SIZE) -> bool:
    """Whether recording ``name`` can move the watermark (else it is a later segment, or not one at all)."""
    if not is_segment(name):
        return False
    segment = parse_segment(name, size)
    if through is None:
        if start is None:
            return True
        first = parse_segment(start, size)
        return segment == first or (segment.timeline > first.timeline and segment.number <= first.number)
    return continues(parse_segment(through, size), segment)


def walk(
    through: str | None, start: str | None, rows: Iterable[tuple[str, datetime]], size: int = DEFAULT_SEGMENT_SIZE
) -> Walk:
    """Move the watermark over ``rows`` (file name, archived_at) in name order, from ``through`` (exclusive)
    or from the archive's ``start`` (inclusive) when there is no watermark yet."""
    last = parse_segment(through, size) if through else None
    last_at: datetime | None = None
    first = parse_segment(start, size) if start else None
    for name, archived_at in rows:
        if not is_segment(name):
            continue
        segment = parse_segment(name, size)
        if last is None:
            if first is not None and segment < first and segment.timeline <= first.timeline:
                continue  # older than any base backup needs
            if (
                first is not None
                and segment != first
                and not restarts(Segment(first.timeline, first.number - 1, size), segment)
            ):
                return Walk(None, None, first.name, name, archived_at)
            last, last_at = segment, archived_at
        elif segment <= last:
            continue
        elif continues(last, segment):
            last, last_at = segment, archived_at
        else:
            return Walk(last.name, last_at, last.next().name, name, archived_at)
    return Walk(last.name if last else None, last_at)


def server_ahead(current_file: str | None, through: str | None, size: int = DEFAULT_SEGMENT_SIZE) -> bool:
    """The server has completed a segment after the watermark (it writes a later one than the next)."""
    if current_file is None or through is None or not is_segment(current_file[:24]) or not is_segment(through[:24]):
        return False
    current, last = parse_segment(current_file[:24], size), parse_segment(through[:24], size)
    return current.timeline >= last.timeline and current.number > last.number + 1


def newer(a: str | None, b: str | None) -> str | None:
    """The later of two WAL file names (name order is archive order)."""
    if a is None or b is None:
        return a or b
    return max(a, b)
