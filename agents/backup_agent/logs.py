"""Logging: JSON lines (one object per record) when not on a terminal, readable text otherwise.

Every handler carries ``RedactingFilter``, so a registered secret never reaches any log output.
Extra fields passed as ``extra={"ctx_name": value}`` appear in the JSON as ``name``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from backup_contracts.redaction import RedactingFilter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        item: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name.startswith("ctx_"):
                item[name[4:]] = value
        if record.exc_text:
            item["exception"] = record.exc_text
        elif record.exc_info:
            item["exception"] = self.formatException(record.exc_info)
        return json.dumps(item, default=str)


def setup_logging(*, json_logs: bool | None = None, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if json_logs is None:
        json_logs = not stream.isatty()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    # on a terminal, erase a progress line (see progress.py) before writing a log line over it
    prefix = "\r\x1b[K" if stream.isatty() else ""
    text = logging.Formatter(prefix + "%(asctime)s %(levelname)s %(message)s")
    handler.setFormatter(JsonFormatter() if json_logs else text)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
