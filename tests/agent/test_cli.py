"""The installed ``backup-agent`` command as a real process against a moto server (real command engine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from agent_engines.real_databases import postgres_server  # noqa: F401 - fixture

from .conftest import Stack, agent_env, config_yaml, make_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MiB = 1024 * 1024
AGENT_BIN = str(Path(sys.executable).with_name("backup-agent"))
PASSWORD = "Zq8-never-in-argv-" + uuid.uuid4().hex[:8]


def dump_script(total: int, *, delay: float = 0.0, exit_code: int = 0, leak_password: bool = False) -> list[str]:
    """A dump command (real child process) writing ``total`` incompressible bytes; a unique marker in argv."""
    marker = f"marker-{uuid.uuid4().hex}"
    body = (
        f"# {marker}\n"
        "import os, sys, time\n"
        "out = sys.stdout.buffer\n"
        f"left = {total}\n"
        "while left > 0:\n"
        "    n = min(1 << 20, left)\n"
        "    out.write(os.urandom(n)); left -= n\n"
        f"    if {delay}: out.flush(); time.sleep({delay})\n"
        "out.flush()\n"
        "pw = os.environ.get('DB_PASSWORD', '')\n"
        f"if {leak_password}: sys.stderr.write('login failed for password ' + pw + '\\n')\n"
        f"sys.exit({exit_code})\n"
    )
    return [sys.executable, "-c", body]


def write_config(stack: Stack, tmp_path: Path, argv: list[str], **extra: Any) -> Path:
    targets = {
        "app": {
            "engine": "command",
            "dump_command": argv,
            "restore_command": ["cat"],
            "env": {"DB_PASSWORD": {"env": "TEST_DB_PASSWORD"}},
        }
    }
    path = tmp_path / "agent.yaml"
    path.write_text(config_yaml(stack, tmp_path / "state", targets=targets, **extra))
    return path


def start_agent(config: Path, aws_env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = agent_env(aws_env, TEST_DB_PASSWORD=PASSWORD)
    log = (tmp_path / "agent.log").open("wb")
    return subprocess.Popen([AGENT_BIN, "--config", str(config), *args], stdout=log, stderr=subprocess.STDOUT, env=env)


def agent_log(tmp_path: Path) -> str:
    return (tmp_path / "agent.log").read_text(errors="replace")


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def upload_has_parts(stack: Stack) -> bool:
    uploads = stack.uploads()
    if not uploads:
        return False
    parts = stack.s3.list_parts(Bucket=stack.bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"])
    return bool(parts.get("Parts"))


def test_sigterm_mid_upload_leaves_nothing_visible_and_the_message_is_redelivered(
    stack: Stack, aws_env: dict[str, str], tmp_path: Path
):
    argv = dump_script(400 * MiB, delay=0.02)
    marker = argv[-1].split("\n", 1)[0][2:]
    stack.send_job(make_job(stack))
    agent = start_agent(write_config(stack, tmp_path, argv), aws_env, tmp_path, "run")
    try:
        assert wait_for(lambda: upload_has_parts(stack)), agent_log(tmp_path)
        started = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
        assert time.monotonic() - started < 15
    finally:
        if agent.poll() is None:
            agent.kill()

    assert stack.objects() == []
    assert stack.uploads() == []
    assert processes_with(marker) == []
    events = stack.drain_events()
    failed = [e for e in events if e["type"] == "Backup Failed"]
    assert [e["detail"]["error"] for e in failed] == ["interrupted by SIGTERM"]
    assert failed[0]["detail"]["stage"] == "dump"
    assert stack.visible_jobs() + stack.in_flight_jobs() == 1  # not deleted: released for redelivery


def test_kill_9_mid_upload_leaves_no_visible_object_and_keeps_the_message(
    stack: Stack, aws_env: dict[str, str], tmp_path: Path
):
    argv = dump_script(400 * MiB, delay=0.02)
    marker = argv[-1].split("\n", 1)[0][2:]
    stack.send_job(make_job(stack))
    agent = start_agent(write_config(stack, tmp_path, argv), aws_env, tmp_path, "run")
    try:
        assert wait_for(lambda: upload_has_parts(stack)), agent_log(tmp_path)
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)

    assert stack.objects() == []  # multipart uploads stay invisible until completed
    assert stack.visible_jobs() + stack.in_flight_jobs() == 1  # not deleted: redelivered after its timeout
    assert wait_for(lambda: processes_with(marker) == [], timeout=10)  # the dump died on the broken pipe


def test_one_off_backup_succeeds_with_admin_trigger_and_exit_code_0(
    stack: Stack, aws_env: dict[str, str], tmp_path: Path
):
    agent = start_agent(write_config(stack, tmp_path, dump_script(3 * MiB)), aws_env, tmp_path, "backup", "app")

    assert agent.wait(timeout=60) == 0, agent_log(tmp_path)
    types = stack.types()
    assert types == ["Backup Started", "Backup Succeeded"]
    assert stack.drain_events()[0]["detail"]["trigger"] == "admin"
    assert len([k for k in stack.objects() if not k.endswith(".manifest.json")]) == 1


def test_one_off_backup_of_a_failing_dump_exits_1_and_uploads_nothing(
    stack: Stack, aws_env: dict[str, str], tmp_path: Path
):
    argv = dump_script(MiB, exit_code=5)
    agent = start_agent(write_config(stack, tmp_path, argv), aws_env, tmp_path, "backup", "app")

    assert agent.wait(timeout=60) == 1
    assert stack.objects() == []
    assert stack.uploads() == []


def test_password_never_appears_in_argv_logs_or_events(stack: Stack, aws_env: dict[str, str], tmp_path: Path):
    argv = dump_script(8 * MiB, delay=0.1, exit_code=1, leak_password=True)
    agent = start_agent(write_config(stack, tmp_path, argv), aws_env, tmp_path, "backup", "app")
    seen_cmdlines: list[bytes] = []
    while agent.poll() is None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    seen_cmdlines.append((entry / "cmdline").read_bytes())
                except OSError:
                    continue
        time.sleep(0.1)

    assert agent.returncode == 1
    assert any(b"marker-" in c for c in seen_cmdlines)  # the dump child was observed while running
    assert not any(PASSWORD.encode() in c for c in seen_cmdlines)
    log = agent_log(tmp_path)
    assert PASSWORD not in log
    events = json.dumps(stack.drain_events())
    assert PASSWORD not in events
    assert "login failed for password" in events  # the stderr tail was reported, masked


def test_config_error_exits_2_and_names_the_line(stack: Stack, aws_env: dict[str, str], tmp_path: Path):
    path = write_config(stack, tmp_path, ["true"])
    lines = path.read_text().splitlines()
    bad = [line.replace('"concurrency": 1', '"concurrency": "many"') if '"region"' in line else line for line in lines]
    bad.insert(3, '  "concurrency": "many",')
    path.write_text("\n".join(bad))

    agent = start_agent(path, aws_env, tmp_path, "check")

    assert agent.wait(timeout=30) == 2
    log = agent_log(tmp_path)
    assert "line 4: concurrency" in log
    assert "Fix:" in log


def test_check_verifies_config_targets_and_aws_without_uploading(stack: Stack, aws_env: dict[str, str], tmp_path: Path):
    env = agent_env(aws_env, TEST_DB_PASSWORD=PASSWORD)
    result = subprocess.run(
        [AGENT_BIN, "--config", str(write_config(stack, tmp_path, ["true"])), "check"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )

    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "[  ok] target app (command)" in out
    assert "[  ok] job queue attributes" in out
    assert "nothing was uploaded" in out
    assert stack.objects() == []


def test_check_reports_an_unresolvable_secret_with_exit_3(stack: Stack, aws_env: dict[str, str], tmp_path: Path):
    env = {k: v for k, v in agent_env(aws_env).items() if k != "TEST_DB_PASSWORD"}
    targets = {
        "app": {
            "engine": "command",
            "dump_command": ["true"],
            "restore_command": ["true"],
            "env": {"DB_PASSWORD": {"env": "TEST_DB_PASSWORD"}},
        }
    }
    path = tmp_path / "agent.yaml"
    path.write_text(config_yaml(stack, tmp_path / "state", targets=targets))
    result = subprocess.run(
        [AGENT_BIN, "--config", str(path), "check"], capture_output=True, env=env, timeout=60, check=False
    )

    assert result.returncode == 3
    assert "[FAIL] target app: environment variable TEST_DB_PASSWORD is not set" in result.stdout.decode()


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_server")
def test_check_tells_a_clone_destination_a_restore_will_create_from_a_broken_one(
    stack: Stack, aws_env: dict[str, str], tmp_path: Path
):
    targets = {
        "staging": {"engine": "postgresql", "host": "127.0.0.1", "database": f"not_yet_{uuid.uuid4().hex[:8]}"},
        "down": {"engine": "postgresql", "host": "127.0.0.1", "port": 1, "database": "app"},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(config_yaml(stack, tmp_path / "state", targets=targets))
    run = [AGENT_BIN, "--config", str(path), "check"]

    both = subprocess.run(run, capture_output=True, env=agent_env(aws_env), timeout=60, check=False)
    out = both.stdout.decode()
    assert "[warn] target staging (postgresql): database 'not_yet_" in out
    assert "a clone or drill restore into it creates it" in out
    assert "[FAIL] target down: cannot connect to 127.0.0.1:1/postgres" in out
    assert both.returncode == 3  # the unreachable server is the problem

    path.write_text(config_yaml(stack, tmp_path / "state", targets={"staging": targets["staging"]}))
    alone = subprocess.run(run, capture_output=True, env=agent_env(aws_env), timeout=60, check=False)
    assert alone.returncode == 0, alone.stdout.decode()


def test_help_lists_the_commands():
    out = subprocess.run([AGENT_BIN, "--help"], capture_output=True, check=True, timeout=30).stdout.decode()
    for command in ("run", "backup", "check", "--config"):
        assert command in out


def test_run_once_drains_the_queue_and_exits(stack: Stack, aws_env: dict[str, str], tmp_path: Path):
    stack.send_job(make_job(stack))
    stack.send_job(make_job(stack))
    agent = start_agent(write_config(stack, tmp_path, dump_script(MiB)), aws_env, tmp_path, "run", "--once")

    assert agent.wait(timeout=90) == 0, agent_log(tmp_path)
    assert len([k for k in stack.objects() if not k.endswith(".manifest.json")]) == 2
    assert stack.visible_jobs() + stack.in_flight_jobs() == 0
    assert os.path.exists(tmp_path / "state" / "completed-jobs.jsonl")


def test_check_exits_4_when_only_aws_access_fails(stack: Stack, aws_env: dict[str, str], tmp_path: Path):
    path = write_config(stack, tmp_path, ["true"])
    path.write_text(path.read_text().replace(stack.queue_url, stack.queue_url + "-missing"))
    env = agent_env(aws_env, TEST_DB_PASSWORD=PASSWORD)

    result = subprocess.run(
        [AGENT_BIN, "--config", str(path), "check"], capture_output=True, env=env, timeout=60, check=False
    )

    assert result.returncode == 4
    assert "[FAIL] job queue attributes" in result.stdout.decode()
