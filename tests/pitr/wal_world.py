"""The world of the WAL tests: a moto server with the pipeline's bucket, key and bus (events captured on
a queue), an agent config for a ``postgresql-physical`` target, and the real ``backup-agent`` run as a
process — by the test, or by PostgreSQL as its ``archive_command``.

Everything a server-run ``wal-push`` needs (config, credentials file, state dir) lives in a directory
the server's OS user owns; the command gets its environment explicitly (``env -i ...``), with the
credentials in a file, never in argv.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard
from botocore.config import Config

from backup_contracts.naming import AGENT_SOURCE_PREFIX, wal_object_key
from backup_contracts.wal import WalIndex, WalIndexEntry
from tests.pitr.cluster import as_server_user, owned_dir, server_user

AGENT = "db-host"
TARGET = "orders-pitr"
REGION = "us-east-1"
BUS = "pitr-bus"
PYTHON = sys.executable
SEGMENT = 16 * 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


def server_python(directory: Path) -> Path:
    """An interpreter the server's OS user can run with the agent importable: the venv's own lives under
    /root here, which ``postgres`` cannot enter, so a wrapper runs the system's Python 3.11 on the venv's
    packages (a host installs the agent where the server user can run it; docs/pitr.md)."""
    if server_user() is None:
        return Path(PYTHON)
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        raise RuntimeError(
            f"the server user cannot run this venv's interpreter and there is no {system} to run the agent's"
            f" packages with. Fix: install python{sys.version_info.major}.{sys.version_info.minor} from the"
            " distribution, or run the tests as a user PostgreSQL may run as"
        )
    site = Path(sys.prefix) / "lib" / "python3.11" / "site-packages"  # the venv the tests run in
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(":") if p]
    paths += [str(REPO / "agents"), str(REPO / "contracts"), str(site)]
    wrapper = directory / "agent-python"
    wrapper.write_text(
        f'#!/bin/sh\nPYTHONPATH={shlex.quote(":".join(paths))}\nexport PYTHONPATH\nexec {system} "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper


@dataclass
class WalWorld:
    root: Path
    endpoint: str
    bucket: str
    kms_key_arn: str
    queue_url: str
    capture_url: str
    s3: Any
    sqs: Any
    events_client: Any
    targets: dict[str, Any] = field(default_factory=dict)
    captured: list[dict[str, Any]] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.root / "agent.yaml"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials"

    def write_config(self, **extra: Any) -> Path:
        data = {
            "agent": AGENT,
            "region": REGION,
            "queue_url": self.queue_url,
            "bus_name": BUS,
            "kms_key_id": self.kms_key_arn,
            "bucket": self.bucket,
            "state_dir": str(self.state_dir),
            "compression": {"level": 1, "threads": 1},
            "targets": self.targets,
            **extra,
        }
        tmp = self.config_path.with_name(".agent.yaml.tmp")  # a wal-push reading it meanwhile sees old or new
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(self.config_path)
        return self.config_path

    # ------------------------------------------------------------------ the agent as a process
    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials),
            "AWS_CONFIG_FILE": str(self.root / "no-aws-config"),
            "AWS_ENDPOINT_URL": self.endpoint,
        }
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        env.update(extra)
        return env

    def argv(self, *args: str, python: str = PYTHON) -> list[str]:
        return [python, "-m", "backup_agent.entry", "--config", str(self.config_path), "--text-logs", *args]

    def agent(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), env=self.env(**env), capture_output=True, text=True, timeout=timeout, check=False
        )

    def start_agent(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), env=self.env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def archive_command(self, **env: str) -> str:
        """``archive_command`` as a host owner writes it, with this world's environment made explicit."""
        assignments = [f"{k}={v}" for k, v in self.env(**env).items()]
        python = str(server_python(self.root))
        argv = ["env", "-i", *assignments, *self.argv("wal-push", "--target", TARGET, python=python)]
        return shlex.join(argv) + " %p"

    def as_server(self, argv: list[str]) -> list[str]:
        return as_server_user(argv)

    # ------------------------------------------------------------------ the archive
    def key(self, name: str) -> str:
        return wal_object_key(AGENT, TARGET, name)

    def archived_names(self) -> list[str]:
        prefix = self.key("X").rsplit("/", 1)[0] + "/"
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return sorted(o["Key"][len(prefix) :].removesuffix(".zst") for o in listed)

    def versions(self, name: str) -> int:
        listed = self.s3.list_object_versions(Bucket=self.bucket, Prefix=self.key(name))
        return len(listed.get("Versions", []))

    def head(self, name: str) -> dict[str, Any]:
        return dict(self.s3.head_object(Bucket=self.bucket, Key=self.key(name)))

    def stored(self, name: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read())

    def raw(self, name: str) -> bytes:
        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(self.stored(name)))

    def wal_events(self) -> list[dict[str, Any]]:
        """Every WAL Archived event on the bus so far (their details), in arrival order."""
        while True:
            got = self.sqs.receive_message(QueueUrl=self.capture_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = got.get("Messages", [])
            if not messages:
                break
            for message in messages:
                body = json.loads(message["Body"])
                self.captured.append({"type": body["detail-type"], "detail": body["detail"]})
                self.sqs.delete_message(QueueUrl=self.capture_url, ReceiptHandle=message["ReceiptHandle"])
        return [e["detail"] for e in self.captured if e["type"] == "WAL Archived"]

    def journal(self, name: str) -> dict[str, Any] | None:
        path = self.state_dir / "wal" / TARGET / "journal" / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def owed(self) -> list[str]:
        owed = self.state_dir / "wal" / TARGET / "owed"
        return sorted(p.stem for p in owed.glob("*.json")) if owed.is_dir() else []

    def presign(self, key: str) -> str:
        return str(self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key}))


def fake_wal_dir(root: Path, count: int, *, start: int = 1, ready: bool = True) -> list[Path]:
    """A ``pg_wal`` with ``count`` segments of compressible, distinct bytes (and their .ready files)."""
    wal = root / "pg_wal"
    (wal / "archive_status").mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(start, start + count):
        name = f"00000001{0:08X}{number:08X}"
        block = (f"segment {number} ".encode() + os.urandom(64)) * 1024
        path = wal / name
        path.write_bytes((block * (SEGMENT // len(block) + 1))[:SEGMENT])
        if ready:
            (wal / "archive_status" / f"{name}.ready").write_text("")
        paths.append(path)
    return paths


def mark_done(path: Path) -> None:
    status = path.parent / "archive_status"
    (status / f"{path.name}.ready").rename(status / f"{path.name}.done")


@pytest.fixture(name="wal_world")
def wal_world_fixture(aws_env: dict[str, str]) -> Iterator[WalWorld]:
    suffix = uuid.uuid4().hex[:8]
    s3 = boto3.client("s3", region_name=REGION, config=Config(signature_version="s3v4"))
    sqs = boto3.client("sqs", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    key_arn = boto3.client("kms", region_name=REGION).create_key(Description="backups")["KeyMetadata"]["Arn"]
    bucket = f"pitr-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    events.create_event_bus(Name=BUS)
    capture_url = sqs.create_queue(QueueName=f"capture-{suffix}")["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="capture", EventBusName=BUS, EventPattern=json.dumps({"source": [{"prefix": AGENT_SOURCE_PREFIX}]})
    )
    events.put_targets(Rule="capture", EventBusName=BUS, Targets=[{"Id": "q", "Arn": capture_arn}])
    queue_url = sqs.create_queue(QueueName=f"jobs-{suffix}")["QueueUrl"]
    root = owned_dir("pitr-wal-world-")
    world = WalWorld(root, aws_env["AWS_ENDPOINT_URL"], bucket, key_arn, queue_url, capture_url, s3, sqs, events)
    world.credentials.write_text(
        f"[default]\naws_access_key_id = {aws_env['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {aws_env['AWS_SECRET_ACCESS_KEY']}\n",
        encoding="utf-8",
    )
    world.targets = {TARGET: {"engine": "postgresql-physical", "host": "127.0.0.1", "port": 5432, "user": "postgres"}}
    world.write_config()
    user = server_user()
    if user:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(world.credentials, entry.pw_uid, entry.pw_gid)
    world.credentials.chmod(0o600)
    yield world
    shutil.rmtree(root, ignore_errors=True)


def index_of(world: WalWorld, names: list[str], *, timeline: int = 1) -> WalIndex:
    """The WalIndex the coordinator would write for these archived files (from the objects themselves)."""
    entries = []
    for name in names:
        head = world.head(name)
        entries.append(
            WalIndexEntry(
                name=name,
                url=world.presign(world.key(name)),
                sha256=head["Metadata"]["sha256"],
                bytes_stored=head["ContentLength"],
                compression=head["Metadata"]["compression"],
            )
        )
    return WalIndex(target=TARGET, timeline=timeline, start_file=names[0], files=entries)
