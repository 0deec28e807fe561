"""How the pipeline writes sizes, ages, instants and one-line texts for people (alerts, backupctl, agent)."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

# control, format (bidi overrides, zero-width), line and paragraph separators, surrogates, unassigned
_UNPRINTABLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
CUT_MARK = "\n[... {cut} bytes cut]\n"


def _cut(flat: str, limit: int) -> str:
    return flat if len(flat) <= limit else flat[: max(limit - 3, 0)].rstrip() + "..."


def one_line(text: str, limit: int) -> str:
    """``text`` flattened to one printable line of at most ``limit`` characters (ellipsis when cut): every
    run of whitespace (newlines too) becomes one space and every other control or invisible character is
    dropped, so that text someone else chose (a requester, a reason, an agent's error, a field name) can
    never start a line of its own in a message nor hide what follows it."""
    flat = " ".join(str(text).split())
    flat = "".join(ch for ch in flat if unicodedata.category(ch) not in _UNPRINTABLE)
    return _cut(flat, limit)


def ascii_line(text: str, limit: int) -> str:
    """One line of printable ASCII, at most ``limit`` characters (ellipsis when cut)."""
    flat = " ".join(str(text).split())
    flat = flat.encode("ascii", "replace").decode("ascii")
    flat = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in flat)
    return _cut(flat, limit)


def fit_bytes(text: str, max_bytes: int) -> str:
    """``text`` whole when its UTF-8 form fits ``max_bytes``, else its head cut at a character boundary
    and a line saying how much was cut, the result still within ``max_bytes`` (SNS counts bytes)."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    mark = CUT_MARK.format(cut=len(data))  # an upper bound of what is cut: the mark's length never grows
    head = data[: max(max_bytes - len(mark.encode("utf-8")), 0)].decode("utf-8", "ignore")
    return head + CUT_MARK.format(cut=len(data) - len(head.encode("utf-8")))


def format_age(delta: timedelta) -> str:
    """3d 4h, 5h 12m, 7m, 40s."""
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def format_time(moment: datetime) -> str:
    """2026-11-22 18:55:00 UTC for UTC instants; ISO 8601 with its offset otherwise."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment.utcoffset() == timedelta(0) else moment.isoformat()


def format_bytes(size: float) -> str:
    """812 B, 3.4 KiB, 1.2 GiB (binary units; also for rates such as bytes per second)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
