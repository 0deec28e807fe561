"""How a restore stops: the stage a ``Restore Failed`` event names, and whether the destination was touched."""

from __future__ import annotations

from typing import Literal

Stage = Literal["download", "verify-object", "safety-backup", "restore", "verify-restore", "config"]
INTERRUPTED = "interrupted by SIGTERM"


class RestoreRefusedError(Exception):
    """The job cannot be run by this agent at all (wrong agent); not retryable, not reported."""


class RestoreFailure(Exception):
    """A restore failed at ``stage``; ``touched``: the destination may have been changed."""

    def __init__(self, stage: Stage, error: str, *, touched: bool = False, stderr_tail: str = "") -> None:
        super().__init__(error)
        self.stage = stage
        self.error = error
        self.touched = touched
        self.stderr_tail = stderr_tail
        self.refused_non_empty = False
