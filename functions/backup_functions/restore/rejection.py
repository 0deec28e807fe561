"""The one way a restore is refused: a ``Rejection`` with a reason code of ``messages.REASON_HELP``."""

from __future__ import annotations


class Rejection(Exception):
    """A restore that may not go ahead: a reason code of ``messages.REASON_HELP`` and why, in words."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
