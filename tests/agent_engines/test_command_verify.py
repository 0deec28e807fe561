"""Command targets: a verify_command fed the dump while it streams, and secret files for the commands."""

from __future__ import annotations

import gzip
import io
import os
import sys
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from backup_agent.engines import build_engine
from backup_agent.engines.base import InvalidDumpError
from backup_agent.engines.command import CommandEngine
from backup_agent.engines.config import CommandConfig

from .conftest import run_dump

pytestmark = pytest.mark.integration

PAYLOAD = os.urandom(3 * 1024 * 1024)
GZIPPED = gzip.compress(PAYLOAD, compresslevel=1)
SECRET = 's3cr\'et: "pa\\ss" #1'  # quotes, a backslash, ': ' and ' #': raw in YAML this would break


def engine_for(dump: list[str], restore: list[str] | None = None, resolve=lambda ref: SECRET, **extra) -> CommandEngine:
    config = CommandConfig(engine="command", dump_command=dump, restore_command=restore or ["cat"], **extra)
    engine = build_engine("cmd-verify", config, resolve)
    assert isinstance(engine, CommandEngine)
    return engine


def writes(data: bytes, path: Path) -> list[str]:
    """A dump command that writes ``data`` (kept in a file) to stdout."""
    path.write_bytes(data)
    return ["cat", str(path)]


def test_a_verify_command_that_rejects_a_truncated_stream_fails_the_backup_with_its_stderr(tmp_path: Path) -> None:
    engine = engine_for(writes(GZIPPED[: len(GZIPPED) // 2], tmp_path / "cut.gz"), verify_command=["gzip", "-t"])

    result = run_dump(engine)

    assert result.outcome.exit_code == 0  # the dump tool itself was happy: only the check can tell
    assert isinstance(result.error, InvalidDumpError)
    message = str(result.error)
    assert message.startswith("verify_command 'gzip' rejected the dump: it exited with status 1")
    assert "unexpected end of file" in message  # gzip's own stderr


def test_a_verify_command_that_accepts_the_whole_stream_passes(tmp_path: Path) -> None:
    engine = engine_for(writes(GZIPPED, tmp_path / "whole.gz"), verify_command=["gzip", "-t"])

    result = run_dump(engine)

    assert result.error is None
    assert result.facts == {"bytes": len(GZIPPED), "verified_by": "gzip"}


@pytest.mark.parametrize("size", [100, len(GZIPPED)], ids=["fits-the-pipe", "larger-than-the-pipe"])
def test_a_verify_command_that_exits_without_reading_fails_and_does_not_hang(tmp_path: Path, size: int) -> None:
    engine = engine_for(writes(GZIPPED[:size], tmp_path / "dump"), verify_command=["true"])

    started = time.monotonic()
    result = run_dump(engine)

    assert time.monotonic() - started < 5
    assert isinstance(result.error, InvalidDumpError)
    assert "verify_command 'true' exited with status 0" in str(result.error)
    assert "did not check the whole stream" in str(result.error)
    assert "Fix:" in str(result.error)


def gone(pid_file: Path) -> bool:
    """Whether the process whose pid the file holds has ended (a zombie awaiting its reaper counts)."""
    stat = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_verify_command_that_stops_reading_fails_after_the_stall_timeout_and_is_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "verifier.pid"
    stuck = ["sh", "-c", 'echo $$ > "$0"; exec sleep 60', str(pid_file)]
    engine = engine_for(writes(PAYLOAD * 3, tmp_path / "dump"), verify_command=stuck, verify_stall_timeout_s=0.5)

    started = time.monotonic()
    result = run_dump(engine)

    assert time.monotonic() - started < 5
    assert isinstance(result.error, InvalidDumpError)
    assert "read nothing of the dump for 0.5 s" in str(result.error)
    assert "verify_stall_timeout_s" in str(result.error)
    assert gone(pid_file)


def test_a_verify_command_that_fails_mid_stream_stops_the_dump_early(tmp_path: Path) -> None:
    endless = [sys.executable, "-c", "import sys\nwhile True: sys.stdout.buffer.write(b'x' * 65536)"]
    engine = engine_for(endless, verify_command=["sh", "-c", "head -c 1000 >/dev/null; echo 'bad magic' >&2; exit 3"])
    started = time.monotonic()
    running, validator = engine.start_dump(), engine.validator()

    def feed_until_refused() -> None:  # as the pipeline does
        while chunk := running.stream.read(65536):
            validator.feed(chunk)

    with pytest.raises(InvalidDumpError) as info:
        feed_until_refused()
    running.terminate()

    assert time.monotonic() - started < 5  # the endless dump was stopped by the rejection
    assert running.wait().exit_code != 0
    assert "exited with status 3 after reading 1000 bytes, before the end of the dump: bad magic" in str(info.value)


def test_a_missing_verify_command_fails_the_backup_at_verify_and_check_names_it(tmp_path: Path) -> None:
    engine = engine_for(writes(b"dump", tmp_path / "dump"), verify_command=["/nonexistent/checker"])

    result = run_dump(engine)

    assert isinstance(result.error, InvalidDumpError)
    assert "cannot start verify_command '/nonexistent/checker'" in str(result.error)
    assert engine.check() == ["verify command '/nonexistent/checker' not found. Fix: install it or give its full path"]


def test_a_failed_dump_stops_its_verifier(tmp_path: Path) -> None:
    pid_file = tmp_path / "verifier.pid"
    waits = ["sh", "-c", 'echo $$ > "$0"; exec cat >/dev/null', str(pid_file)]
    fails = ["sh", "-c", 'while [ ! -s "$0" ]; do sleep 0.01; done; printf partial; exit 2', str(pid_file)]
    engine = engine_for(fails, verify_command=waits)

    result = run_dump(engine)  # the pipeline never asks a failed dump's validator for a verdict

    assert result.outcome.exit_code == 2
    assert gone(pid_file)


CHILD = """
import os, stat, sys
path = sys.argv[1].removeprefix("--config=")
info, folder = os.stat(path), os.stat(os.path.dirname(path))
cmdline, environ = open("/proc/self/cmdline", "rb").read(), open("/proc/self/environ", "rb").read()
print(path, oct(stat.S_IMODE(info.st_mode)), oct(stat.S_IMODE(folder.st_mode)), cmdline.hex(), environ.hex())
sys.stdout.write(open(path).read())
sys.stderr.write("failed to log in with " + open(path).read())
"""


def test_a_secret_file_reaches_the_command_privately_and_is_gone_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGO_SECRET_VALUE", SECRET)  # where the reference points; no credential-like name
    engine = engine_for(
        [sys.executable, "-c", CHILD, "--config={file:mongo}"],
        resolve=lambda ref: os.environ[ref.env],
        secret_files={"mongo": {"content": "password: {secret_json}\n", "secret": {"env": "MONGO_SECRET_VALUE"}}},
    )

    result = run_dump(engine)

    first, content = result.data.decode().split("\n", 1)
    path, mode, folder_mode, cmdline, environ = first.split()
    assert (mode, folder_mode) == ("0o600", "0o700")
    assert SECRET.encode() not in bytes.fromhex(cmdline)  # argv has the file's path, never the secret
    assert SECRET.encode() not in bytes.fromhex(environ)  # nor the child's environment
    assert b"MONGO_SECRET_VALUE" not in bytes.fromhex(environ)
    assert yaml.safe_load(content) == {"password": SECRET}  # any character survives YAML
    assert not Path(path).exists()  # removed when the dump was reaped
    assert not Path(path).parent.exists()
    assert SECRET not in result.outcome.stderr_tail
    assert "failed to log in with password: ***" in result.outcome.stderr_tail


def test_each_command_gets_its_own_copy_of_a_secret_file_and_it_is_removed_after_the_restore(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    restore = [
        sys.executable,
        "-c",
        f"import sys; p = sys.argv[1]; open({str(seen)!r}, 'w').write(p + chr(10) + open(p).read()); sys.stdin.read()",
        "{file:cfg}",
    ]
    engine = engine_for(
        writes(GZIPPED, tmp_path / "dump.gz"),
        restore,
        secret_files={"cfg": {"content": "token {secret}", "secret": {"env": "UNUSED"}}},
        verify_command=[
            sys.executable,
            "-c",
            "import sys; open(sys.argv[1]).read(); sys.stdin.buffer.read()",
            "{file:cfg}",
        ],
    )

    assert run_dump(engine).facts == {"bytes": len(GZIPPED), "verified_by": sys.executable}
    report = engine.restore(io.BytesIO(GZIPPED), mode="clone")

    path, content = seen.read_text().split("\n", 1)
    assert content == f"token {SECRET}"
    assert not Path(path).exists()
    assert report.verification["bytes"] == len(GZIPPED)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dump_command": ["mongodump", "--config={file:mongo}"]}, "not defined"),
        ({"secret_files": {"mongo": {"content": "password: {secret}", "secret": {"env": "A"}}}}, "used by no command"),
        (
            {
                "dump_command": ["x", "{file:m}"],
                "secret_files": {"m": {"content": "password: x", "secret": {"env": "A"}}},
            },
            "placeholder",
        ),
        (
            {
                "dump_command": ["x", "{file:m}"],
                "secret_files": {"m": {"content": "user: a\npassword: hunter2\n{secret}", "secret": {"env": "A"}}},
            },
            "in the clear",
        ),
        ({"verify_command": ["check", "--password", "hunter2"]}, "process list"),
        ({"verify_command": ["check", "--uri=mongodb://u:hunter2@db/app"]}, "process list"),
    ],
)
def test_config_mistakes_in_verify_commands_and_secret_files_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        CommandConfig(**{"engine": "command", "dump_command": ["x"], "restore_command": ["y"], **settings})
    assert "hunter2" not in str(info.value)
