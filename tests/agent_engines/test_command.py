"""Command engine: arbitrary dump/restore commands (how MongoDB and others are supported)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from backup_agent.engines import build_engine
from backup_agent.engines.base import EngineError, InvalidDumpError
from backup_agent.engines.command import CommandEngine
from backup_agent.engines.config import CommandConfig, SecretRef

from .conftest import run_dump, validate

pytestmark = pytest.mark.integration


def engine_for(dump: list[str], restore: list[str], resolve=lambda ref: "unused", **extra) -> CommandEngine:
    config = CommandConfig(engine="command", dump_command=dump, restore_command=restore, **extra)
    engine = build_engine("cmd-test", config, resolve)
    assert isinstance(engine, CommandEngine)
    return engine


def test_dump_and_restore_round_trip_through_stdout_and_stdin(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 2000)
    target = tmp_path / "restored.bin"
    engine = engine_for(["cat", str(source)], ["sh", "-c", 'cat > "$1"', "restore", str(target)])

    result = run_dump(engine)
    report = engine.restore(io.BytesIO(result.data), mode="clone")

    assert result.outcome.exit_code == 0
    assert result.facts == {"bytes": 512_000}
    assert target.read_bytes() == source.read_bytes()
    assert report.verification["bytes"] == 512_000


def test_secret_env_reaches_the_child_environment_and_is_masked_in_its_stderr(
    env_resolve,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BK_TEST_TOKEN", "tok-XYZ-12345")
    script = 'printf "%s" "$APP_TOKEN" | wc -c; echo "failed with token $APP_TOKEN and pass""word=abc" >&2; exit 7'
    engine = engine_for(
        ["sh", "-c", script], ["cat"], env_resolve, env={"APP_TOKEN": SecretRef(env="BK_TEST_TOKEN"), "PLAIN": "x"}
    )

    result = run_dump(engine)

    assert result.data.strip() == b"13"  # the child saw the resolved value
    assert result.outcome.exit_code == 7  # written data, then a failure: reported, never a backup
    assert "tok-XYZ-12345" not in result.outcome.stderr_tail
    assert "password=abc" not in result.outcome.stderr_tail
    assert "failed with token ***" in result.outcome.stderr_tail


def test_empty_output_and_wrong_magic_are_rejected() -> None:
    empty = engine_for(["true"], ["cat"])
    assert isinstance(run_dump(empty).error, InvalidDumpError)

    with_magic = engine_for(["printf", "XXXX"], ["cat"], magic_hex="6de29981")
    assert isinstance(run_dump(with_magic).error, InvalidDumpError)
    assert validate(with_magic, bytes.fromhex("6de29981") + b"rest") == {"bytes": 8}


def test_failing_restore_command_raises_with_exit_code_and_tail() -> None:
    engine = engine_for(["true"], ["sh", "-c", "cat >/dev/null; echo 'restore broke: pass''word=pw1' >&2; exit 4"])

    with pytest.raises(EngineError) as info:
        engine.restore(io.BytesIO(b"some dump bytes"), mode="clone")

    assert info.value.exit_code == 4
    assert info.value.stage == "restore"
    assert "restore broke" in info.value.stderr_tail
    assert "pw1" not in info.value.stderr_tail


def test_terminate_stops_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-alive"
    script = f'(sleep 30; touch "{marker}") & sleep 30; echo done'
    engine = engine_for(["sh", "-c", script], ["cat"])
    running = engine.start_dump()
    time.sleep(0.2)

    started = time.monotonic()
    running.terminate()
    outcome = running.wait()

    assert time.monotonic() - started < 3
    assert outcome.exit_code != 0
    assert running.stream.closed
    assert not group_alive(running.pid)  # nothing is left in the dump's process group


def group_alive(pgid: int, within: float = 2.0) -> bool:
    """Whether a live (non-zombie) process is still in the group; orphaned zombies await PID 1."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        live = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                live.append(stat_file)
        if not live:
            return False
        time.sleep(0.05)
    return True


def test_check_reports_missing_commands() -> None:
    engine = engine_for(["definitely-not-a-tool-xyz"], ["cat"])

    assert engine.check() == [
        "dump command 'definitely-not-a-tool-xyz' not found. Fix: install it or give its full path"
    ]


def test_missing_restore_tool_is_an_engine_error_with_exit_127() -> None:
    engine = engine_for(["true"], ["/nonexistent/restore-tool"])

    with pytest.raises(EngineError) as info:
        engine.restore(io.BytesIO(b"x"), mode="clone")

    assert info.value.exit_code == 127


def test_drop_restored_says_it_cannot_clean_up_and_leaves_the_destination(tmp_path: Path) -> None:
    restored = tmp_path / "drill" / "restored.bin"
    restored.parent.mkdir()
    engine = engine_for(["true"], ["sh", "-c", 'cat > "$1"', "restore", str(restored)])
    engine.restore(io.BytesIO(b"scratch copy"), mode="drill")

    said = engine.drop_restored()

    assert said == "no cleanup for command target 'cmd-test': clear the scratch destination with its own tools"
    assert restored.read_bytes() == b"scratch copy"  # its restore command owns the destination
