"""The agent's version (from the installed distribution; works for editable and wheel installs)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("backup-pipeline")
except PackageNotFoundError:  # running from a source tree without installation
    VERSION = "0.0.0+source"
