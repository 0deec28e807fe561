"""A SIGKILLed agent cannot remove its private pgpass dir; the next start of the agent does — only dirs
this agent creates, and only those whose process is gone."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_agent import cli, proc

from .conftest import Stack, config_yaml

pytestmark = pytest.mark.integration

HOLD_A_PGPASS = (
    "import sys, time\n"
    "from backup_agent.proc import SecretFiles\n"
    "print(SecretFiles().write('pgpass', '*:*:*:*:pw-of-a-killed-run\\n'), flush=True)\n"
    "time.sleep(60)\n"
)


def holder(tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process that wrote a pgpass the way the agent does, and is still running."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_PGPASS], stdout=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp)}
    )
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip()).parent


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield tmp
    root.handlers[:] = handlers
    root.setLevel(level)


def test_only_the_dirs_of_agent_processes_that_are_gone_are_removed(private_tmp: Path) -> None:
    killed, killed_dir = holder(private_tmp)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    alive, alive_dir = holder(private_tmp)
    not_ours = [private_tmp / "backup-agent-secrets-notapid-x", private_tmp / "something-else-1"]
    foreign_content = private_tmp / f"backup-agent-secrets-{killed.pid}-other"
    for path in [*not_ours, foreign_content]:
        path.mkdir(mode=0o700)
    (foreign_content / "notes.txt").write_text("not a secret file of ours")
    try:
        removed = proc.remove_stale_secret_dirs(str(private_tmp))
    finally:
        alive.kill()
        alive.wait()

    assert removed == [str(killed_dir)]
    assert not killed_dir.exists()
    assert (alive_dir / "pgpass").exists()  # a running agent's file is never touched
    assert all(path.exists() for path in [*not_ours, foreign_content])


def test_the_agent_removes_a_killed_runs_pgpass_when_it_starts(
    stack: Stack, aws_env: dict[str, str], tmp_path: Path, private_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    killed, killed_dir = holder(private_tmp)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    config = tmp_path / "agent.yaml"
    config.write_text(config_yaml(stack, tmp_path / "state"))

    cli.main(["--config", str(config), "--text-logs", "check"])

    assert not killed_dir.exists()
    assert f"removed the private secret dir {killed_dir}" in capsys.readouterr().err
