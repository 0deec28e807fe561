"""Backup schedules: ``cron(<5 fields>)`` in the target's time zone, or ``rate(<n> <unit>)``.

One definition serves the fleet validation at synth time and the dispatcher at run time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

_RATE_RE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON_RE = re.compile(r"^cron\((.+)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_DURATION_RE = re.compile(r"^(\d+)\s*(m|h|d)$")
_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400}
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
# A backup schedule fires at least once a year; a duration (an RPO) is at most 400 days. Beyond these
# nothing is a plausible backup setting, and the Lambdas' date arithmetic could overflow.
MAX_INTERVAL = timedelta(days=366)
MAX_DURATION = timedelta(days=400)


class ScheduleError(ValueError):
    pass


def _wall_clock(instant: datetime, zone: ZoneInfo) -> datetime:
    """What a clock on the wall in ``zone`` shows at ``instant`` (naive)."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _local_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """The instant a cron's local time ``local`` (naive) runs at: once per local time, even across clock changes.

    - A local time the autumn change repeats runs once, at its first occurrence (before the clock goes back).
    - A local time the spring change skips runs right after the jump, at the first instant of the new offset.

    This is the rule Vixie cron (cron(8)) applies to jobs at fixed times, here applied to every cron. EventBridge
    Scheduler, which does not schedule targets here (the dispatcher does), skips a skipped time instead: a
    backup that silently does not happen once a year is worse than one that runs at 03:00 instead of 02:30.
    """
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall_clock(first, zone) == local:
        return first
    # Skipped: with fold=1 the time is read with the offset after the change, an instant before the jump;
    # with fold=0 with the offset before it, an instant after. The jump lies between: find it to the second.
    low, high = local.replace(tzinfo=zone, fold=1).astimezone(UTC), first
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if _wall_clock(middle, zone) >= local:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def parse_duration(text: str, maximum: timedelta = MAX_DURATION) -> timedelta:
    """'30m', '26h', '7d' → timedelta; zero, or more than ``maximum``, is refused."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ScheduleError(f"{text!r} is not a duration. Fix: write a positive number and a unit, e.g. 30m, 26h, 7d")
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds == 0:
        raise ScheduleError(
            f"{text!r} is not a duration: it is zero. Fix: write a positive duration, e.g. 30m, 26h, 7d"
        )
    if seconds > maximum.total_seconds():
        raise ScheduleError(
            f"{text!r} is longer than {format_duration(maximum)}, the most this setting allows."
            f" Fix: use at most {format_duration(maximum)}"
        )
    return timedelta(seconds=seconds)


@lru_cache(maxsize=4096)
def _never_fires(fields: str) -> bool:
    """A valid cron that matches no date at all (30 February): croniter gives up looking for one."""
    try:
        croniter(fields, _EPOCH).get_next(datetime)
    except CroniterBadDateError:
        return True
    return False


def bounded_duration(setting: str, text: str, maximum: timedelta) -> str:
    """``text`` when it is a duration of at most ``maximum``; else a ValueError naming ``setting`` and the fix
    (for the fleet model's validators)."""
    try:
        parse_duration(text, maximum)
    except ScheduleError as exc:
        raise ValueError(f"{setting} {exc}") from None
    return text


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. Slots are the instants at which a run is due, in UTC."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(
                f"unknown time zone {self.timezone!r}. Fix: use an IANA name like Europe/Berlin"
            ) from exc
        if self._rate_seconds() is None and self._cron_fields() is None:
            raise ScheduleError(
                f"{self.expression!r} is not a schedule. Fix: write cron(<minute> <hour> <day> <month> <weekday>)"
                " like cron(0 2 * * *), or rate(<n> minutes|hours|days) like rate(6 hours)"
            )

    def _rate_seconds(self) -> int | None:
        match = _RATE_RE.match(self.expression.strip())
        if not match:
            return None
        amount = int(match.group(1))
        if amount == 0:
            raise ScheduleError(f"{self.expression!r}: a rate of zero never runs. Fix: use rate(1 hour) or more")
        seconds = amount * _UNIT_SECONDS[match.group(2).rstrip("s")]
        if seconds > MAX_INTERVAL.total_seconds():
            raise ScheduleError(
                f"{self.expression!r} runs less often than once every {format_duration(MAX_INTERVAL)}."
                " Fix: use at most rate(366 days), e.g. rate(1 day) or rate(7 days)"
            )
        return seconds

    def _cron_fields(self) -> str | None:
        match = _CRON_RE.match(self.expression.strip())
        if not match:
            return None
        fields = match.group(1).strip()
        if len(fields.split()) != 5:
            raise ScheduleError(
                f"{self.expression!r} has {len(fields.split())} cron fields, not five."
                " Fix: write cron(<minute> <hour> <day-of-month> <month> <day-of-week>), e.g. cron(0 2 * * *)"
            )
        if not croniter.is_valid(fields):
            raise ScheduleError(
                f"{self.expression!r} is not a valid cron expression (a field is out of range or malformed)."
                " Fix: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-6, e.g. cron(0 2 * * *)"
            )
        if _never_fires(fields):
            raise ScheduleError(
                f"{self.expression!r} never fires: no month has that day (e.g. 30 February, 31 April)."
                " Fix: pick a day every chosen month has, e.g. cron(0 2 28 2 *), or L for the last day"
            )
        return fields

    def slots_after(self, start: datetime) -> Iterator[datetime]:
        """Due instants strictly after ``start``, ascending, in UTC (local-time crons: see ``_local_to_utc``)."""
        rate = self._rate_seconds()
        if rate is not None:
            elapsed = (start - _EPOCH).total_seconds()
            slot = _EPOCH + timedelta(seconds=(int(elapsed // rate) + 1) * rate)
            while True:
                yield slot
                slot += timedelta(seconds=rate)
        fields = self._cron_fields()
        assert fields is not None  # noqa: S101 - guaranteed by __post_init__
        zone = ZoneInfo(self.timezone)
        # the cron walks the wall clock (naive local times), each matching time mapped to one instant
        it = croniter(fields, _wall_clock(start, zone))
        previous = start
        while True:
            slot = _local_to_utc(it.get_next(datetime), zone)
            if slot > previous:  # a repeated or skipped local time maps onto an instant already given
                previous = slot
                yield slot

    def latest_slot_at_or_before(self, now: datetime) -> datetime | None:
        """The most recent due instant not after ``now`` (None if none within the look-back window)."""
        rate = self._rate_seconds()
        if rate is not None:
            elapsed = (now - _EPOCH).total_seconds()
            return _EPOCH + timedelta(seconds=int(elapsed // rate) * rate)
        fields = self._cron_fields()
        assert fields is not None  # noqa: S101
        zone = ZoneInfo(self.timezone)
        # croniter's get_prev is strictly before its start: start one second after now, on a whole second
        # (a fraction would let a slot up to a second after now through)
        wall = now.astimezone(zone)
        start = wall.replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
        if wall.fold:  # the second pass of a repeated hour: its later local times already ran, on the first
            start += cast(timedelta, wall.replace(fold=0).utcoffset()) - cast(timedelta, wall.utcoffset())
        it = croniter(fields, start)
        while True:
            slot = _local_to_utc(it.get_prev(datetime), zone)
            if slot <= now:
                return slot

    def max_interval(self, horizon: timedelta = timedelta(days=366)) -> timedelta:
        """Longest gap between two consecutive slots over the horizon (a year covers every cron)."""
        rate = self._rate_seconds()
        if rate is not None:
            return timedelta(seconds=rate)
        slots = self.slots_after(_EPOCH)
        previous = next(slots)
        longest = timedelta(0)
        end = previous + horizon
        for count, slot in enumerate(slots):
            longest = max(longest, slot - previous)
            previous = slot
            if slot > end or count > 20_000:
                break
        return longest
