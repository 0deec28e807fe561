"""The restore half of the local demo: a restore into a protected target, requested by one person and
approved by another through the approvals URL (its local stand-in), and the weekly drill that measures RTO."""

from __future__ import annotations

import json
from typing import Any

from local_pipeline.approvals_url import Identity
from local_pipeline.demo import SOURCE_TARGET, Demo, agent_log_messages
from local_pipeline.runner import PipelineStepError
from local_pipeline.verify import VerificationError, sqlite_rows

CLONE_TARGET = "app-sqlite-clone"
REQUESTER, APPROVER = "alice", "bob"  # the demo's people (approvers in demo_fleet.yaml)


def person(name: str, account: str) -> tuple[str, Identity]:
    """A person's access key and what the approvals URL's stand-in knows of it (a local, made-up secret)."""
    return f"AKIALOCAL{name.upper()}", Identity(f"local-{name}-secret", f"arn:aws:iam::{account}:user/{name}")


def session_of(name: str, account: str, region: str) -> Any:
    """The AWS session the person's backupctl signs with."""
    import boto3

    key, identity = person(name, account)
    return boto3.Session(aws_access_key_id=key, aws_secret_access_key=identity.secret_key, region_name=region)


class RestoreDemo:
    """The restore half: a request event, guarded and verified, and a restore drill that measures RTO."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.world = demo.world

    def _agent_round(self) -> None:
        """Coordinator → agent queue → agent → bus → audit and coordinator, once around."""
        pipeline = self.world.pipeline
        pipeline.drain_restore_events(self.demo.now)
        assert self.world.agent_config is not None  # noqa: S101 - set by seed()
        finished = pipeline.run_agent(self.world.agent_config)
        for line in agent_log_messages(finished.stderr):
            self.demo.out(f"  agent: {line}")
        pipeline.drain_audit(self.demo.now)
        pipeline.drain_restore_events(self.demo.now)

    def restore_round_trip(self) -> None:
        from backup_contracts.approvals_url import APPROVALS_PATH, REQUESTS_PATH
        from backup_contracts.events import RestoreRequested

        restore_id = f"demo-{self.demo.now:%Y%m%dT%H%M%S}"
        self.demo.step(
            f"Restore Requested by {REQUESTER} through the approvals URL: latest good {SOURCE_TARGET} backup cloned"
            f" into the protected {CLONE_TARGET}"
        )
        request = RestoreRequested(
            restore_id=restore_id,
            target=SOURCE_TARGET,
            destination=CLONE_TARGET,
            mode="clone",
            requested_by=REQUESTER,  # the URL takes who asks from the signature, not from here
            reason="restore round trip",
        )
        body = request.model_dump(mode="json", exclude={"requested_by"}, exclude_none=True)
        self.demo.out(f"POST {REQUESTS_PATH} signed as {REQUESTER}: {json.dumps(body)}")
        resources, pipeline = self.world.resources, self.world.pipeline
        people = dict(person(name, resources.account) for name in (REQUESTER, APPROVER))
        with pipeline.approvals_url(people) as url, pipeline.clock.at(self.demo.now):
            self._expect(self._call(url, REQUESTER, REQUESTS_PATH, body), "awaiting-approval")
            self.demo.show_alerts("The approval notice")
            self._expect(self._call(url, REQUESTER, APPROVALS_PATH, {"restore_id": restore_id}), "self-approval")
            self._expect(self._call(url, APPROVER, APPROVALS_PATH, {"restore_id": restore_id}), "dispatched")
        self._agent_round()
        restore = self.world.ledger().restores.get(restore_id)
        if restore is None:
            raise PipelineStepError(f"restore {restore_id} is not in the ledger")
        history = " -> ".join(step.get("state", "?") for step in restore.history)
        self.demo.out(f"restore {restore_id}: {history or restore.state}")
        self.demo.out(f"  requested by {restore.requested_by_arn}, approved by {restore.approved_by}")
        if restore.state != "succeeded":
            raise PipelineStepError(f"restore {restore_id} ended {restore.state!r}: {restore.error or ''}")
        source, clone = self.world.database_paths[SOURCE_TARGET], self.world.database_paths[CLONE_TARGET]
        if sqlite_rows(clone) != sqlite_rows(source):
            raise VerificationError(f"the restored {CLONE_TARGET} differs from {SOURCE_TARGET}")
        self.demo.out(f"{clone} verified: integrity ok, every row of every table equals {SOURCE_TARGET}")

    def _call(self, url: str, who: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """What ``backupctl restore`` / ``backupctl approve`` do: one POST signed with the person's keys."""
        from backupctl import approvals_client

        resources = self.world.resources
        session = session_of(who, resources.account, resources.region)
        status, answer = approvals_client.call(session, url, path, body, region=resources.region)
        code = f" ({answer.reason_code})" if answer.reason_code else ""
        self.demo.out(f"{who}: POST {path} -> {status} {answer.action}{code}: {answer.detail}")
        return status, answer

    @staticmethod
    def _expect(reply: tuple[int, Any], wanted: str) -> None:
        status, answer = reply
        if wanted not in (answer.action, answer.reason_code):
            raise PipelineStepError(
                f"the approvals URL answered {status} {answer.action} ({answer.reason_code}),"
                f" not {wanted}: {answer.detail}"
            )

    def drill(self) -> None:
        self.demo.step(
            "Restore drill (the coordinator's schedule): the latest backup's off-site copy into a scratch target, timed"
        )
        report = self.world.pipeline.tick_restore_drills(self.demo.now) or {}
        self.demo.out(f"drills dispatched: {report.get('drills_dispatched')}")
        self._agent_round()
        drilled = self.world.ledger().targets.get(SOURCE_TARGET)
        if drilled is None or drilled.last_drill_ok is not True:
            raise PipelineStepError(f"the restore drill of {SOURCE_TARGET} did not succeed: {drilled}")
        item = self.world.ledger().restores.get(str(drilled.last_drill_restore_id))
        read = (item.source if item else None) or {}
        self.demo.out(f"{SOURCE_TARGET}: drill ok from s3://{read.get('bucket')}, RTO {drilled.last_drill_rto_s} s")
