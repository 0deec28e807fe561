"""How the pipeline writes sizes, ages, instants and one-line texts for people (alerts, backupctl, agent)."""

from __future__ import annotations

from datetime import datetime, timedelta


def ascii_line(text: str, limit: int) -> str:
    """One line of printable ASCII, at most ``limit`` characters (ellipsis when cut)."""
    flat = " ".join(text.split())
    flat = flat.encode("ascii", "replace").decode("ascii")
    flat = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in flat)
    if len(flat) > limit:
        flat = flat[: limit - 3].rstrip() + "..."
    return flat


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
