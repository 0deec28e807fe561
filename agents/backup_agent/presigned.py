"""GETs through presigned URLs: how a restore reads a backup, and how ``wal-fetch`` reads archived WAL.

Kept apart from the restore executor (and light to import) so that ``wal-fetch``, which PostgreSQL
starts once per WAL file, loads nothing it does not use.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import BinaryIO

DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_TIMEOUT_S = 60.0
DOWNLOAD_ERRORS = (urllib.error.URLError, OSError, TimeoutError)
Opener = Callable[[str, float], BinaryIO]


def retryable(exc: BaseException) -> bool:
    """A GET worth another attempt: a network error, a 5xx or a 429 (an expired URL or a 404 is not)."""
    return not isinstance(exc, urllib.error.HTTPError) or exc.code >= 500 or exc.code == 429


def retry_delay_s(attempt: int) -> float:
    """How long to wait after failed attempt ``attempt`` (1, 2, ...): 2 s, 4 s, then 5 s."""
    return min(2.0 * attempt, 5.0)


def open_url(url: str, timeout: float) -> BinaryIO:
    """GET a presigned URL (http(s) only; no credentials of ours are involved)."""
    if not url.lower().startswith(("https://", "http://")):
        raise ValueError(f"refusing to open a non-http(s) URL scheme: {url.split(':', 1)[0]}")
    request = urllib.request.Request(url, method="GET")  # noqa: S310 - scheme checked above
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310


def safe_url(url: str) -> str:
    """The URL without its query string (the signature is a bearer credential: never log it)."""
    return url.split("?", 1)[0]


def describe_error(exc: BaseException) -> str:
    """An HTTP or network error as a person reads it (what a 403 or 404 of a presigned URL means)."""
    if isinstance(exc, urllib.error.HTTPError):
        hint = {403: " (URL expired or signature invalid)", 404: " (object or version gone)"}.get(exc.code, "")
        return f"HTTP {exc.code}{hint}"
    return f"{type(exc).__name__}: {exc}"
