"""Before a backup runs: whether this agent takes the job, and the run id and object key a run of it gets.

A job this agent must never run (another agent's, a foreign key prefix, an unknown target, a kind
it does not run) raises ``JobRefusedError``: not retryable, left for the queue's DLQ. A job it takes
but cannot start (its target's config or secrets are unusable) still ends with ``Backup Failed``
(``config_failure``), so the failure is on the bus like any other.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from backup_agent.config import AgentConfig, ConfigError
from backup_contracts.events import BackupFailed
from backup_contracts.jobs import Job
from backup_contracts.naming import agent_prefix, backup_object_key
from backup_contracts.redaction import redact


class JobRefusedError(Exception):
    """The job cannot be run by this agent (wrong agent, prefix, unknown target...); not retryable."""


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"


def object_key_for(job: Job, config: AgentConfig, run_id: str, started: datetime, extension: str) -> str:
    """The run's object key: the naming layout, kept below the job's key prefix, which must be ours."""
    own = check_key_prefix(job, config)
    key = backup_object_key(config.agent, job.target, run_id, started, f"{extension}.zst")
    if key.startswith(job.key_prefix):
        return key
    return job.key_prefix.rstrip("/") + "/" + key[len(own) :]


def check_key_prefix(job: Job, config: AgentConfig) -> str:
    """This agent's own prefix, if the job's key prefix lies below it; JobRefusedError otherwise."""
    own = agent_prefix(config.agent)
    if not job.key_prefix.startswith(own) or ".." in job.key_prefix:
        raise JobRefusedError(f"job {job.job_id} asks for key prefix {job.key_prefix!r}, outside this agent's {own!r}")
    return own


def check_job(job: Job, config: AgentConfig, *, kinds: tuple[str, ...] = ("backup",)) -> None:
    if job.agent != config.agent:
        raise JobRefusedError(f"job {job.job_id} is for agent {job.agent!r}, this is {config.agent!r}")
    if job.kind not in kinds:
        raise JobRefusedError(f"job {job.job_id} is a {job.kind} job; this agent runs {', '.join(kinds)} jobs")
    if job.kind != "backup":
        return  # restore/drill jobs name their destination; the restore executor checks it
    if job.target not in config.targets:
        raise JobRefusedError(
            f"job {job.job_id} names target {job.target!r}, which is not in this host's config "
            f"(known: {', '.join(sorted(config.targets))})"
        )
    # before anything runs: a job that cannot even report its failure under our prefix is refused here
    check_key_prefix(job, config)


def config_failure(job: Job, config: AgentConfig, error: str, now: datetime) -> BackupFailed:
    """The Failed event of a run that could not start (its target's config or secrets are unusable)."""
    run_id = new_run_id(now)
    return BackupFailed(
        job_id=job.job_id,
        run_id=run_id,
        target=job.target,
        agent=config.agent,
        trigger=job.trigger,
        started_at=now,
        bucket=job.bucket,
        key=object_key_for(job, config, run_id, now, "none"),
        finished_at=now,
        stage="config",
        error=redact(error)[:2000],
    )


def admin_job(config: AgentConfig, target: str, now: datetime) -> Job:
    """The job of a one-off `backup-agent backup TARGET` (trigger admin, a unique job id, a 24 h deadline)."""
    if not config.bucket:
        raise ConfigError(
            "config", ["`backup TARGET` needs `bucket:` in the config. Fix: add the backup bucket's name"]
        )
    return Job(
        job_id=f"admin.{target}.{now:%Y%m%dT%H%M%SZ}.{uuid.uuid4().hex[:8]}",
        kind="backup",
        agent=config.agent,
        target=target,
        trigger="admin",
        issued_at=now,
        deadline=now + timedelta(hours=24),
        bucket=config.bucket,
        key_prefix=agent_prefix(config.agent),
        retention_class=config.retention_class,
    )
