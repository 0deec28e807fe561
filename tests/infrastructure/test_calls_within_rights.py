"""The deployed roles can make every AWS call the code makes: no AccessDenied on the happy path.

The local demo (``make demo``: dispatcher, a real agent process, audit, watchdog, a restore with an
approval, a drill) runs with every botocore call recorded — the functions' in this process, tagged with
the function ``LocalPipeline._invoke`` is running; the agent's through a test-only ``sitecustomize`` on its
``PYTHONPATH`` — plus the calls AWS makes with a function's role on its behalf (the event source
mapping's SQS calls, a presigned URL's GetObject, the KMS requests of SSE-KMS objects, encrypted queues,
topic and ledger) and the approver's call of the approvals URL. ``access_matrix.calls`` turns each into
the IAM requests it is authorised as, with the demo fleet's synthesized stack in place of moto's names,
and the access matrix's evaluator must answer Allowed for every one. moto itself allows everything, so
without this a policy that lacks a right the code needs would pass every other test and fail on AWS.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from access_matrix.calls import Call, LocalNames, UnmappedCallError, VaultLocalNames, rows_of
from access_matrix.evaluator import Evaluator, EvaluatorUnavailableError, Verdict
from access_matrix.matrix import AccessMatrix, explain
from access_matrix.rows import AGENT, APPROVER, AUDIT, DISPATCHER, RESTORE, WATCHDOG, Row
from aws_cdk.assertions import Template
from botocore import signers
from botocore.client import BaseClient

from backup_contracts import naming
from backup_contracts.fleet import Fleet, load_fleet
from local_pipeline.demo import default_fleet_file, run_demo
from local_pipeline.resources import LocalResources
from local_pipeline.runner import LocalPipeline
from stacks.app_factory import build_app, stack_id
from stacks.pipeline_stack import PipelineStack
from stacks.vault import VaultStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORDER = Path(__file__).parent / "calls_recorder"
FUNCTIONS = (DISPATCHER, AUDIT, WATCHDOG, RESTORE)
EVENT_SOURCE_MAPPING = ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes")


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    """The params as the agent's recorder writes them, so both sides map alike."""
    return json.loads(json.dumps(params, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else "<binary>"))


@dataclass
class Recording:
    calls: list[Call]
    resources: LocalResources | None = None
    presigned: int = 0  # URLs a function signed for an agent to fetch


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """The whole demo, with every call of the functions and the agent recorded."""
    recorded = Recording([])
    running: list[str] = []  # the function LocalPipeline._invoke is running (one at a time)
    endpoint = [""]  # the demo's moto server
    make_api_call, presign, invoke = BaseClient._make_api_call, signers.generate_presigned_url, LocalPipeline._invoke

    def ours(client: Any) -> bool:
        """A call of the running function to the demo's moto server (not of a thread another test left)."""
        return bool(running) and client.meta.endpoint_url.rstrip("/") == endpoint[0]

    def record(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if ours(self):
            service = self.meta.service_model.service_name
            recorded.calls.append(Call(running[-1], service, operation, _jsonable(params)))
        return make_api_call(self, operation, params)

    def record_presign(self: Any, client_method: str, Params: Any = None, **kwargs: Any) -> Any:
        if ours(self):  # whoever fetches the URL signs as this function's role
            operation = self.meta.method_to_api_mapping[client_method]
            recorded.calls.append(Call(running[-1], "s3", operation, _jsonable(Params or {})))
            recorded.presigned += 1
        return presign(self, client_method, Params=Params, **kwargs)

    def record_invoke(self: LocalPipeline, name: str, module: str, event: dict[str, Any]) -> Any:
        assert not running, f"{name} invoked while {running} runs: calls could not be told apart"
        recorded.resources, endpoint[0] = self.resources, self.endpoint.url.rstrip("/")
        for record_ in event.get("Records", []):  # Lambda's event source mapping, with the function's role
            queue = {"QueueUrl": record_["eventSourceARN"]}
            recorded.calls += [Call(name, "sqs", op, queue) for op in EVENT_SOURCE_MAPPING]
        if "requestContext" in event:  # a person's signed call of the approvals URL
            recorded.calls.append(Call(APPROVER, "lambda", "InvokeFunctionUrl", {"FunctionName": name}))
        running.append(name)
        try:
            return invoke(self, name, module, event)
        finally:
            running.pop()

    agent_calls = tmp_path_factory.mktemp("calls") / "agent.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", record)
        patch.setattr(signers, "generate_presigned_url", record_presign)
        patch.setattr(LocalPipeline, "_invoke", record_invoke)
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(RECORDER), os.environ.get("PYTHONPATH")])))
        patch.setenv("BACKUP_PIPELINE_RECORD_CALLS", str(agent_calls))
        run_demo(tmp_path_factory.mktemp("demo"), out=lambda _: None)
    for line in agent_calls.read_text(encoding="utf-8").splitlines():
        call = json.loads(line)
        recorded.calls.append(Call(AGENT, call["service"], call["operation"], call["params"]))
    return recorded


@dataclass(frozen=True)
class StackOf:
    """One synthesized stack (``access_matrix.matrix.SynthesizedApp``)."""

    stack: Any
    template: Template

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))


@dataclass(frozen=True)
class DemoStack(StackOf):
    """The demo fleet's stack, synthesized as ``cdk synth`` does, and its off-site vault's stack."""

    fleet: Fleet
    vault: StackOf | None


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> DemoStack:
    fleet_file = default_fleet_file()
    fleet = load_fleet(fleet_file)
    app = build_app(fleet_file, outdir=tmp_path_factory.mktemp("cdk.out"), bundle_dependencies=False)
    stack = app.node.find_child(stack_id(fleet))
    assert isinstance(stack, PipelineStack)
    vault = app.node.try_find_child(naming.vault_stack_name(fleet.pipeline.name))
    assert fleet.pipeline.offsite is None or isinstance(vault, VaultStack), "the demo fleet's vault stack"
    vault_of = StackOf(vault, Template.from_stack(vault)) if isinstance(vault, VaultStack) else None
    return DemoStack(stack, Template.from_stack(stack), fleet, vault_of)


@pytest.fixture(scope="module")
def matrix(demo_stack: DemoStack) -> AccessMatrix:
    try:
        return AccessMatrix.of(demo_stack, Evaluator(), vault=demo_stack.vault)
    except EvaluatorUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


def local_names(recording: Recording, demo_stack: DemoStack, matrix: AccessMatrix) -> LocalNames:
    """moto's names of the demo's resources → the synthesized stack's ARNs."""
    local = recording.resources
    assert local is not None, "no function ran"
    arn, pipeline = matrix.bindings.names, demo_stack.fleet.pipeline.name
    resolved = matrix.resolved.arns
    queues = {
        naming.audit_events_queue_name(pipeline): arn["audit_queue"],
        naming.restore_events_queue_name(pipeline): arn["restore_queue"],
        naming.silence_events_queue_name(pipeline): arn["silence_queue"],
    }
    for name, access in demo_stack.stack.agent_access.agents.items():
        queues[naming.job_queue_name(pipeline, name)] = resolved[demo_stack.logical_id(access.queue)]
        queues[naming.job_dlq_name(pipeline, name)] = resolved[demo_stack.logical_id(access.dlq)]
    vault = None
    if local.vault is not None:  # the demo's off-site vault (pipeline.offsite), read by the watchdog and restore
        vault = VaultLocalNames(
            bucket=(local.vault.bucket, arn["vault_bucket"]),
            key=(local.vault.key_arn, arn["vault_key"]),
            via_s3={
                "kms:ViaService": f"s3.{local.vault.region}.amazonaws.com",
                "kms:CallerAccount": demo_stack.fleet.pipeline.offsite.primary_account,  # type: ignore[union-attr]
                "kms:ResourceAliases": (naming.vault_key_alias(pipeline),),
            },
        )
    return LocalNames(
        vault=vault,
        bucket=(local.bucket, arn["bucket"]),
        table=(local.ledger_table, arn["table"]),
        key=(local.kms_key_arn, arn["key"]),
        topic=(local.alert_topic_arn, arn["topic"]),
        bus=(local.bus_name, arn["bus"]),
        queues=queues,
        functions={name: arn[f"{name}_function"] for name in FUNCTIONS},
    )


@pytest.fixture(scope="module")
def requested(recording: Recording, demo_stack: DemoStack, matrix: AccessMatrix) -> tuple[list[Row], dict[str, Any]]:
    try:
        return rows_of(recording.calls, local_names(recording, demo_stack, matrix))
    except UnmappedCallError as exc:
        pytest.fail(f"{exc} — map it in access_matrix/calls.py", pytrace=False)


def _denied(matrix: AccessMatrix, rows: list[Row], behind: dict[str, Any]) -> list[str]:
    verdicts: dict[str, Verdict] = matrix.evaluate(rows)
    failures = []
    for row in rows:
        verdict = verdicts[row.name]
        if verdict.ignored_context_keys:
            failures.append(f"{row.name}: the evaluator ignores {list(verdict.ignored_context_keys)}")
        elif not verdict.allowed:
            failures.append(f"{explain(row, matrix.request(row), verdict)}\n  made by {len(behind[row.name])} call(s)")
    return failures


def test_every_call_of_the_demo_is_allowed_by_the_deployed_policies(
    matrix: AccessMatrix, requested: tuple[list[Row], dict[str, Any]]
) -> None:
    rows, behind = requested
    failures = _denied(matrix, rows, behind)
    assert not failures, f"{len(failures)} of {len(rows)} requests would be denied on AWS:\n" + "\n".join(failures)


def test_the_recording_holds_every_principal_and_the_calls_that_matter(
    recording: Recording, requested: tuple[list[Row], dict[str, Any]], matrix: AccessMatrix
) -> None:
    """Non-vacuous: every function, the agent and the approver made calls, including the critical ones."""
    rows, _ = requested
    made = {(row.principal, row.action) for row in rows}
    for needed in [
        (DISPATCHER, "sqs:SendMessage"),
        (AGENT, "sqs:ReceiveMessage"),
        (AGENT, "s3:PutObject"),
        (AGENT, "kms:GenerateDataKey"),
        (AGENT, "events:PutEvents"),
        (AUDIT, "dynamodb:UpdateItem"),
        (AUDIT, "s3:GetObject"),
        (AUDIT, "s3:PutObjectTagging"),
        (AUDIT, "s3:PutObjectRetention"),
        (AUDIT, "sns:Publish"),
        (WATCHDOG, "dynamodb:Query"),
        (RESTORE, "sqs:SendMessage"),
        (RESTORE, "s3:GetObjectVersion"),  # the presigned URL the agent downloads with
        (WATCHDOG, "s3:GetObject"),  # the off-site check reads each copy back from the vault
        (RESTORE, "sqs:ReceiveMessage"),  # its event source mapping
        (APPROVER, "lambda:InvokeFunctionUrl"),
    ]:
        assert needed in made, f"the demo made no {needed[1]} as {needed[0]}: the recording misses calls"
    assert recording.presigned, "the restore signed no URL: the agent's download is not checked"
    # the demo fleet has an off-site vault: the watchdog verifies copies there and a drill restores from it
    vault, vault_key = matrix.bindings.names["vault_bucket"], matrix.bindings.names["vault_key"]
    for principal in (WATCHDOG, RESTORE):
        assert any(r.principal == principal and r.resource.startswith(f"{vault}/") for r in rows), principal
        assert (principal, "kms:Decrypt", vault_key) in {(r.principal, r.action, r.resource) for r in rows}
    operations = {call.operation for call in recording.calls if call.caller == AGENT}
    assert {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "PutObject"} <= operations, operations


@dataclass(frozen=True)
class TakenAway:
    """The statement ``sid`` (default: the one granting ``action``) taken from ``principal``; ``on`` narrows
    the requests to those on one resource (a bindings name: the vault's bucket or key)."""

    sid: str | None
    principal: str
    action: str
    on: str | None = None


@pytest.mark.parametrize(
    "taken",
    [
        pytest.param(TakenAway(None, AUDIT, "dynamodb:GetItem"), id="audit-loses-ledger-reads"),
        pytest.param(TakenAway("WriteOwnPrefixOnly", AGENT, "s3:PutObject"), id="agent-loses-its-prefix"),
        pytest.param(TakenAway("PutAgentEventsOnBus", AGENT, "events:PutEvents"), id="agent-loses-its-events"),
        pytest.param(
            TakenAway("ReadVaultCopies", WATCHDOG, "s3:GetObject", "vault_bucket"), id="watchdog-loses-its-vault-reads"
        ),
        pytest.param(
            TakenAway("DecryptVaultCopiesThroughS3", RESTORE, "kms:Decrypt", "vault_key"), id="restore-loses-vault-key"
        ),
    ],
)
def test_a_right_the_code_needs_taken_away_is_denied(
    matrix: AccessMatrix, requested: tuple[list[Row], dict[str, Any]], taken: TakenAway
) -> None:
    """The test can fail: without the statement that grants a call the demo makes, that call is denied."""
    rows, behind = requested
    prefix = matrix.bindings.names[taken.on] if taken.on else ""
    needed = [
        r for r in rows if (r.principal, r.action) == (taken.principal, taken.action) and r.resource.startswith(prefix)
    ]
    assert needed, f"the demo made no {taken.action} as {taken.principal}"
    sid = taken.sid or _granting_sid(matrix, taken.principal, taken.action)
    mutated = matrix.with_stack(matrix.resolved.without_statement(sid))
    failures = _denied(mutated, needed, behind)
    assert len(failures) == len(needed), f"without {sid} these are still allowed: {needed}"


def _granting_sid(matrix: AccessMatrix, principal: str, action: str) -> str:
    """The Sid of the principal's identity statement that grants ``action``."""
    for policy in matrix.principal(principal).identity_policies:
        for statement in policy.document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if statement["Effect"] == "Allow" and action in actions and "Sid" in statement:
                return str(statement["Sid"])
    raise AssertionError(f"no statement with a Sid grants {principal} {action}")
