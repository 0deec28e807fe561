"""A validator tap for restores: it never interrupts the stream it watches, and reports at the end."""

from __future__ import annotations

from backup_agent.engines.base import Chunk, InvalidDumpError, StreamValidator


class Deferred:
    """Wraps a validator so that ``feed`` never raises; the first error is raised by ``finish``.

    Restores use it as a tap on the stream they pipe into a tool: the tool's own failure and the
    format verdict are then reported together, and cleanup paths stay in one place.
    """

    def __init__(self, inner: StreamValidator) -> None:
        self.inner = inner
        self._error: InvalidDumpError | None = None

    def feed(self, chunk: Chunk) -> None:
        if self._error is None:
            try:
                self.inner.feed(chunk)
            except InvalidDumpError as exc:
                self._error = exc

    def finish(self) -> dict[str, object]:
        if self._error is not None:
            raise self._error
        return self.inner.finish()
