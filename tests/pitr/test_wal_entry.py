"""``backup-agent wal-push``/``wal-fetch`` start lean: PostgreSQL runs one process per WAL file, so they
must not load the queue consumer, the engines or the restore executor (each import costs every file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backup_agent.cli_options import command_of

pytestmark = pytest.mark.unit

HEAVY = (
    "backup_agent.consumer",
    "backup_agent.restore.run",
    "backup_agent.engines.postgresql_physical",
    "backup_agent.pipeline",
    "boto3",
)


def test_the_subcommand_is_found_past_the_global_options() -> None:
    assert command_of(["--config", "/etc/a.yaml", "--text-logs", "wal-push", "--target", "t", "x"]) == "wal-push"
    assert command_of(["-v", "wal-fetch", "--index", "i", "f", "p"]) == "wal-fetch"
    assert command_of(["--config", "wal-push", "run"]) == "run"  # a config file named like a command
    assert command_of(["--version"]) is None


def test_wal_fetch_loads_none_of_the_rest_of_the_agent(tmp_path: Path) -> None:
    index = tmp_path / "wal-index.json"
    index.write_text(json.dumps({"target": "t", "timeline": 1, "start_file": "0" * 23 + "1", "files": []}))
    probe = (
        "import sys; from backup_agent.entry import main;"
        f" code = main(['wal-fetch', '--index', {str(index)!r}, '00000002.history', {str(tmp_path / 'out')!r}]);"
        f" print(code, [m for m in {HEAVY!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)

    assert done.stdout.strip() == "1 []", done.stderr  # not in the index: exit 1, and nothing heavy loaded
