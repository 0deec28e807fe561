"""Test-only: record every AWS API call this Python process makes, one JSON line each.

``tests/infrastructure/test_calls_within_rights.py`` puts this directory on the agent process's
``PYTHONPATH`` and names the file in ``BACKUP_PIPELINE_RECORD_CALLS``; Python imports ``sitecustomize``
at start-up, so the agent runs unchanged while each call botocore makes is appended to that file.
Without the variable this module does nothing.
"""

from __future__ import annotations

import json
import os
import threading

_PATH = os.environ.get("BACKUP_PIPELINE_RECORD_CALLS")

if _PATH:
    from typing import Any

    from botocore.client import BaseClient

    def jsonable(value: Any) -> str:
        """Times as ISO text (the request context needs them); bodies and streams as a placeholder."""
        return value.isoformat() if hasattr(value, "isoformat") else "<binary>"

    _lock = threading.Lock()
    _make_api_call = BaseClient._make_api_call

    def _recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        line = json.dumps(
            {"service": self.meta.service_model.service_name, "operation": operation_name, "params": api_params},
            default=jsonable,
        )
        with _lock, open(_PATH, "a", encoding="utf-8") as sink:
            sink.write(line + "\n")
        return _make_api_call(self, operation_name, api_params)

    BaseClient._make_api_call = _recording  # type: ignore[method-assign]
