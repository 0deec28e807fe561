"""A minimal progress line on stderr (bytes read, rate, compression ratio) for interactive runs."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from backup_contracts.formatting import format_bytes


class ProgressBar:
    """Redraws one line at most ``hz`` times a second; ``close`` prints the final state."""

    def __init__(self, label: str, stream: TextIO | None = None, hz: float = 4.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = 1.0 / hz
        self.t0 = time.monotonic()
        self._last = 0.0
        self._state = (0, 0)
        self._lock = threading.Lock()

    def __call__(self, bytes_in: int, bytes_stored: int) -> None:
        self._state = (bytes_in, bytes_stored)
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._draw()

    def _draw(self, end: str = "") -> None:
        bytes_in, stored = self._state
        elapsed = max(1e-6, time.monotonic() - self.t0)
        ratio = f"{bytes_in / stored:.2f}x" if stored else "-"
        spinner = "|/-\\"[int(elapsed * 4) % 4] if not end else " "
        line = (
            f"\r{spinner} {self.label}: {format_bytes(bytes_in)} read, {format_bytes(stored)} stored, "
            f"{format_bytes(bytes_in / elapsed)}/s, ratio {ratio}, {elapsed:.0f}s"
        )
        with self._lock:
            self.stream.write(line.ljust(100) + end)
            self.stream.flush()

    def close(self) -> None:
        self._draw(end="\n")
