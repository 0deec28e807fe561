"""The agent's side of ``bench.restore``: its own backup once, then restore jobs as the coordinator sends them.

Against the benchmark's one moto server: a versioned bucket, the KMS key, the bus, the agent's job
queue, and a queue behind an EventBridge rule with the restore coordinator's own pattern
(``RESTORE_PATTERN``), which is how the Restore Started / Succeeded / Failed events are read back.

- ``backup``: ``backup-agent backup TARGET`` (untimed), then the manifest beside the object, as the
  coordinator reads it (its ``validator`` facts become the job's ``manifest_facts``).
- ``restore``: a ``Job(kind="restore", mode="clone")`` built with the contract models, its source
  presigned (SigV4) for exactly that object version, put on the agent's queue; then the timed
  process ``backup-agent --json-logs --config agent.yaml run --once``, which drains the queue and
  exits. A fresh config per run names the destination target (a new database) and a job queue of
  the run's own; a fresh state_dir holds the spool (sampled for its peak bytes).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backup_contracts import naming
from backup_contracts.events import RESTORE_PATTERN
from backup_contracts.jobs import Job, RestoreSource
from backup_contracts.naming import agent_prefix, manifest_key
from bench.harness import AGENT, BUCKET, BUS, REGION, VENV_BIN, DirSampler, MotoProcess, run_measured

DESTINATION = "restore-dest"  # the destination target's name in every per-run config
EVENTS_QUEUE = "bench-restore-events"
JOB_DEADLINE = timedelta(hours=6)


@dataclass
class AgentRun:
    """One timed ``run --once``: the process measurements and what the bus heard."""

    wall_s: float
    exit_code: int
    stdout: str
    stderr: str
    usage: Any
    sampler: Any
    spool_peak_bytes: int
    started_at: datetime  # wall clock when the process was started (the job was already queued)
    exited_at: datetime
    events: list[dict[str, Any]] = field(default_factory=list)  # detail-type + detail, this restore's only

    def event(self, detail_type: str) -> dict[str, Any] | None:
        return next((e["detail"] for e in self.events if e["detail-type"] == detail_type), None)


def manifest_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the coordinator puts into the job from the manifest: ``naming.restore_facts`` where the
    contracts have it (format facts and the database's properties), else the validator's facts."""
    shared = getattr(naming, "restore_facts", None)
    if shared is not None:
        return dict(shared(manifest))
    return dict(manifest["validator"]) if isinstance(manifest.get("validator"), dict) else {}


def target_entry(engine: str, host: str, port: str, user: str, database: str) -> dict[str, str]:
    return {"engine": engine, "host": host, "port": port, "user": user, "database": database}


def _yaml_scalar(value: str) -> str:
    return value if value.replace("-", "").replace("_", "").replace(".", "").isalnum() else json.dumps(value)


class AgentRestores:
    def __init__(self, moto: MotoProcess, workdir: Path, env: dict[str, str], *, timeout: float) -> None:
        self.moto = moto
        self.workdir = workdir
        self.env = env
        self.timeout = timeout
        self.agent = str(VENV_BIN / "backup-agent")
        self.queue_url = ""
        self.events_url = ""
        self._s3 = moto.client("s3")
        self._sqs = moto.client("sqs")
        self._runs = 0

    def setup(self) -> None:
        """Bucket (versioned, like the stack's), KMS key, bus, job queue, and the restore events' queue."""
        self.moto.reset()
        self._s3 = self.moto.client("s3")
        self._s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        self.queue_url = self._sqs.create_queue(QueueName=f"{AGENT}-jobs")["QueueUrl"]
        self.events_url = self._sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self.events_url, AttributeNames=["QueueArn"])["Attributes"]
        events = self.moto.client("events")
        events.put_rule(Name="bench-restore", EventBusName=BUS, EventPattern=json.dumps(RESTORE_PATTERN))
        events.put_targets(Rule="bench-restore", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])

    def write_config(
        self, path: Path, state_dir: Path, targets: dict[str, dict[str, str]], queue_url: str = ""
    ) -> None:
        lines = [
            f"agent: {AGENT}",
            f"region: {REGION}",
            f"queue_url: {queue_url or self.queue_url}",
            f"bus_name: {BUS}",
            f"kms_key_id: {self.moto.key_arn}",
            f"bucket: {BUCKET}",
            f"state_dir: {state_dir}",
            "targets:",
        ]
        for name, entry in targets.items():
            lines.append(f"  {name}:")
            lines.extend(f"    {key}: {_yaml_scalar(str(value))}" for key, value in entry.items())
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ the backup, once per source
    def backup(self, target: str, entry: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The agent's own backup of ``target`` (untimed): its Backup Succeeded event and manifest facts."""
        config = self.workdir / f"backup-{target}.yaml"
        self.write_config(config, self.workdir / "backup-state", {target: entry})
        cmd = [self.agent, "--json-logs", "--config", str(config), "backup", target]
        _wall, code, out, err, _usage, _sampler = run_measured(cmd, env=self.env, timeout=self.timeout)
        if code != 0:
            raise RuntimeError(f"backup-agent backup {target} exited {code}: {(err or out).strip()[-800:]}")
        event = json.loads(out[out.index("{") :])
        body = self._s3.get_object(Bucket=BUCKET, Key=manifest_key(event["key"]))["Body"].read()
        return event, manifest_facts(json.loads(body))

    # ------------------------------------------------------------------ one restore, timed
    def job_body(self, backup: dict[str, Any], facts: dict[str, Any]) -> tuple[str, str]:
        """The restore job as the coordinator sends it: the contract model, the URL signed at the send."""
        now = datetime.now(UTC)
        restore_id = f"bench-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        job = Job(
            job_id=restore_id,
            kind="restore",
            agent=AGENT,
            target=DESTINATION,
            trigger="user",
            issued_at=now,
            deadline=now + JOB_DEADLINE,
            bucket=BUCKET,
            key_prefix=agent_prefix(AGENT),
            retention_class="standard",
            restore_id=restore_id,
            destination=DESTINATION,
            mode="clone",
            source=RestoreSource(
                run_id=backup["run_id"],
                target=backup["target"],
                bucket=backup["bucket"],
                key=backup["key"],
                version_id=backup.get("version_id"),
                sha256=backup["sha256"],
                bytes_stored=backup["bytes_stored"],
                engine=backup["engine"],
                format=backup["format"],
                compression=backup["compression"],
                started_at=backup.get("started_at"),
                manifest_facts=facts,
            ),
        )
        params = {"Bucket": BUCKET, "Key": backup["key"]}
        if backup.get("version_id"):
            params["VersionId"] = backup["version_id"]
        signer = self.moto.client("s3", signature_version="s3v4")
        url = signer.generate_presigned_url("get_object", Params=params, ExpiresIn=int(JOB_DEADLINE.total_seconds()))
        body = json.loads(job.model_dump_json(exclude_none=True))
        body["source"]["presigned_url"] = url
        return restore_id, json.dumps(body, separators=(",", ":"))

    def restore(
        self,
        backup: dict[str, Any],
        facts: dict[str, Any],
        targets: dict[str, dict[str, str]],
        *,
        env: dict[str, str],
        database: str | None = None,
    ) -> AgentRun:
        """Queue one clone restore into ``targets[DESTINATION]``, then time ``run --once`` draining it."""
        self._runs += 1
        run_dir = self.workdir / f"agent-run-{self._runs}"
        state_dir = run_dir / "state"
        state_dir.mkdir(parents=True)
        config = run_dir / "agent.yaml"
        # a queue of its own per run: a job an earlier run left (in flight) can never reach this one
        queue_url = self._sqs.create_queue(QueueName=f"{AGENT}-jobs-{self._runs}")["QueueUrl"]
        self.write_config(config, state_dir, targets, queue_url)
        self._drain(self.events_url)
        restore_id, body = self.job_body(backup, facts)
        self._sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=body,
            MessageAttributes={"dedup_id": {"DataType": "String", "StringValue": restore_id}},
        )
        disk = DirSampler(state_dir)
        disk.start()
        started = datetime.now(UTC)
        cmd = [self.agent, "--json-logs", "--config", str(config), "run", "--once"]
        try:
            wall, code, out, err, usage, sampler = run_measured(cmd, env=env, timeout=self.timeout, database=database)
        finally:
            disk.stop()
        exited = datetime.now(UTC)
        events = [e for e in self._drain(self.events_url) if e.get("detail", {}).get("restore_id") == restore_id]
        self._sqs.delete_queue(QueueUrl=queue_url)
        shutil.rmtree(run_dir, ignore_errors=True)
        return AgentRun(wall, code, out, err, usage, sampler, disk.peak_bytes, started, exited, events)

    def _drain(self, queue_url: str) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = []
        while True:
            messages = self._sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                return bodies
            for message in messages:
                with contextlib.suppress(ValueError):
                    bodies.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
