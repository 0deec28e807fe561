"""Bind the specification's symbols to the synthesized stack and turn each row into an evaluator request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from backup_contracts import ledger, naming
from stacks.agent_access import agent_trust_tag_value

from .evaluator import Evaluator, Request, Verdict
from .rows import (
    AGENT,
    APPROVER,
    AUDIT,
    DISPATCHER,
    FOREIGN,
    FOREIGN_ACCOUNT,
    HOST,
    RESTORE,
    WATCHDOG,
    Decision,
    Row,
)
from .template import ACCOUNT, PARTITION, REGION, Env, NamedPolicy, ResolvedStack
from .vault_principals import ADMIN, DEPLOYER, REPLICATION

RUN_STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN_ID = "run-0001"
WAL_FILE = "000000010000000000000003"  # an archived WAL segment (the audit heads, tags and locks it)


class SynthesizedApp(Protocol):
    """What the matrix needs of tests/infrastructure/conftest.py's ``Synthesized``."""

    @property
    def stack(self) -> Any: ...

    @property
    def template(self) -> Any: ...

    def logical_id(self, construct: Any) -> str: ...


@dataclass(frozen=True)
class Principal:
    """Who signs a request: its ARN, the identity policies attached to it, and its role (if a role session)."""

    arn: str
    identity_policies: tuple[NamedPolicy, ...] = ()
    role_arn: str | None = None

    @property
    def is_service(self) -> bool:
        return self.arn.endswith(".amazonaws.com")


def _allow(name: str, action: str | list[str], resource: str) -> NamedPolicy:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return NamedPolicy(name, {"Version": "2012-10-17", "Statement": [statement]})


def resolve_vault(vault: SynthesizedApp) -> ResolvedStack:
    """The off-site vault's template, resolved in its own account and region."""
    stack = vault.stack
    env = Env(account=str(stack.account), region=str(stack.region))
    return ResolvedStack.from_template(vault.template.to_json(), stack_name=stack.stack_name, env=env)


def vault_names(vault: SynthesizedApp, resolved: ResolvedStack) -> dict[str, str]:
    """The placeholders of the vault's rows: its bucket, a copy of the first agent's backup, its key."""
    stack = vault.stack
    agent = stack.fleet.agents[0]
    names = stack.names  # stacks.vault_names.VaultNames
    bucket = resolved.arns[vault.logical_id(stack.bucket)]
    copy = naming.backup_object_key(agent.name, agent.targets[0].name, RUN_ID, RUN_STARTED, "zst")
    logs = resolved.arns[vault.logical_id(stack.access_logs)]
    return {
        "vault_bucket": bucket,
        "vault_copy": f"{bucket}/{copy}",
        "vault_manifest": f"{bucket}/{naming.manifest_key(copy)}",
        "vault_outside_agents": f"{bucket}/elsewhere/{RUN_ID}.zst",
        "vault_key": resolved.arns[vault.logical_id(stack.key)],
        "vault_key_alias": names.key_alias,
        "vault_s3": names.s3_service,
        "vault_account": names.account,
        "vault_region": names.region,
        "primary_account": names.primary_account,
        "vault_access_log": f"{logs}/vault/2026-01-02-03-04-05-0123456789ABCDEF",
        "deployer_role": f"arn:{PARTITION}:iam::{names.account}:role/cdk-hnb659fds-cfn-exec-role-{names.account}-"
        f"{names.region}",
    }


@dataclass(frozen=True)
class Bindings:
    """The concrete value of every ``{placeholder}`` and principal symbol the rows use."""

    names: Mapping[str, str]
    role_ids: Mapping[str, str]  # principal symbol -> logical id of its role in the template
    policy_ids: Mapping[str, str]  # principal symbol -> logical id of the managed policy its role is given

    @classmethod
    def of_vault(cls, vault: SynthesizedApp, resolved: ResolvedStack) -> Bindings:
        """The vault alone (no pipeline stack): its placeholders, and no role of a template."""
        return cls(names=vault_names(vault, resolved), role_ids={}, policy_ids={})

    @classmethod
    def of(
        cls,
        synthesized: SynthesizedApp,
        resolved: ResolvedStack,
        vault: tuple[SynthesizedApp, ResolvedStack] | None = None,
    ) -> Bindings:
        stack = synthesized.stack
        fleet = stack.fleet
        agent = fleet.agents[0]
        other_agent = f"{agent.name}-2"  # shares agent's name as a prefix: proves the prefix ends at its "/"
        pipeline = fleet.pipeline.name

        def arn(construct: Any) -> str:
            return resolved.arns[synthesized.logical_id(construct)]

        functions = stack.functions

        def child(*path: str) -> Any:
            node = functions
            for name in path:
                node = node.node.find_child(name)
            return node

        bucket = arn(stack.storage.bucket)
        own_backup = naming.backup_object_key(agent.name, agent.targets[0].name, RUN_ID, RUN_STARTED, "zst")
        other_backup = naming.backup_object_key(other_agent, agent.targets[0].name, RUN_ID, RUN_STARTED, "zst")
        queue_prefix = f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:"
        agents = stack.agent_access.agents
        roles = {name: functions.functions[name].role for name in (DISPATCHER, AUDIT, WATCHDOG, RESTORE)}
        roles[AGENT] = agents[agent.name].role
        if getattr(stack, "offsite", None) is not None:  # pipeline.offsite: the replication role
            roles[REPLICATION] = stack.offsite.role
        names = {
            "bucket": bucket,
            "own_backup": f"{bucket}/{own_backup}",
            "own_manifest": f"{bucket}/{naming.manifest_key(own_backup)}",
            "own_wal": f"{bucket}/{naming.wal_object_key(agent.name, agent.targets[0].name, WAL_FILE)}",
            "restore_index": f"{bucket}/{naming.wal_index_key('r-0001')}",
            "other_agent_backup": f"{bucket}/{other_backup}",
            "outside_agents": f"{bucket}/elsewhere/{RUN_ID}.zst",
            "access_log": f"{arn(stack.storage.access_logs)}/backups/2026-01-02-03-04-05-0123456789ABCDEF",
            "key": arn(stack.storage.key),
            "other_key": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000",
            "agent_queue": arn(agents[agent.name].queue),
            "agent_dlq": arn(agents[agent.name].dlq),
            "other_agent_queue": queue_prefix + naming.job_queue_name(pipeline, other_agent),
            "audit_queue": arn(child("AuditEvents", "Queue")),
            "audit_dlq": arn(child("AuditEvents", "Dlq")),
            "restore_queue": arn(child("RestoreEvents", "Queue")),
            "restore_dlq": arn(child("RestoreEvents", "Dlq")),
            "silence_queue": arn(child("WatchdogEvents", "Queue")),
            "silence_dlq": arn(child("WatchdogEvents", "Dlq")),
            "silence_rule": arn(child("WatchdogRule")),
            "requests_dlq": arn(functions.dlqs[DISPATCHER]),
            "audit_rule": arn(child("AuditRule")),
            "restore_rule": arn(child("RestoreRule")),
            "requests_rule": arn(child("DispatcherRequestsRule")),
            "bus": arn(stack.events.bus),
            "table": arn(stack.ledger.table),
            "table_index": f"{arn(stack.ledger.table)}/index/{ledger.WATCH_INDEX}",
            "topic": arn(stack.alerting.topic),
            "alarm": arn(stack.monitoring.alarms[0]),
            "dispatcher_schedule": arn(child("DispatcherSchedule")),
            "watchdog_schedule": arn(child("WatchdogSchedule")),
            "restore_schedule": arn(child("RestoreSchedule")),
            "agent_trust_tag": agent_trust_tag_value(pipeline, agent.name),
            "other_agent_trust_tag": agent_trust_tag_value(pipeline, other_agent),
            "other_pipeline_trust_tag": agent_trust_tag_value(f"{pipeline}-2", agent.name),
            "agent_source": naming.agent_event_source(agent.name),
            "other_agent_source": naming.agent_event_source(other_agent),
        } | {f"{symbol}_role": arn(role) for symbol, role in roles.items()}
        names |= {f"{name}_function": arn(function) for name, function in functions.functions.items()}
        if vault is not None:
            names |= vault_names(*vault)
        role_ids = {symbol: synthesized.logical_id(role) for symbol, role in roles.items()}
        policy_ids = {APPROVER: synthesized.logical_id(stack.approvals.callers_policy)}
        return cls(names=names, role_ids=role_ids, policy_ids=policy_ids)

    def fill(self, value: str) -> str:
        return value.format_map(self.names)


class AccessMatrix:
    """The rows evaluated against one resolved stack (swap the stack with ``with_stack`` to mutate it)."""

    def __init__(self, resolved: ResolvedStack, bindings: Bindings, evaluator: Evaluator) -> None:
        self.resolved = resolved
        self.bindings = bindings
        self._evaluator = evaluator
        self._principals = self._build_principals()

    @classmethod
    def of(cls, synthesized: SynthesizedApp, evaluator: Evaluator, vault: SynthesizedApp | None = None) -> AccessMatrix:
        """The pipeline stack's policies; with ``vault``, also the off-site vault's bucket and key policies (another
        template, account and region), which the requests of the pipeline's roles on the vault are evaluated by."""
        resolved = ResolvedStack.from_template(synthesized.template.to_json(), stack_name=synthesized.stack.stack_name)
        if vault is None:
            return cls(resolved, Bindings.of(synthesized, resolved), evaluator)
        resolved_vault = resolve_vault(vault)
        bindings = Bindings.of(synthesized, resolved, vault=(vault, resolved_vault))
        return cls(resolved.with_resource_policies_of(resolved_vault), bindings, evaluator)

    @classmethod
    def of_vault(cls, vault: SynthesizedApp, evaluator: Evaluator) -> AccessMatrix:
        """The vault's policies alone, for principals that need no pipeline template (ADMIN, DEPLOYER, FOREIGN)."""
        resolved = resolve_vault(vault)
        return cls(resolved, Bindings.of_vault(vault, resolved), evaluator)

    def with_stack(self, resolved: ResolvedStack) -> AccessMatrix:
        return AccessMatrix(resolved, self.bindings, self._evaluator)

    def _build_principals(self) -> dict[str, Principal]:
        principals = {
            symbol: Principal(role.session_arn(), role.identity_policies, role.arn)
            for symbol, logical_id in self.bindings.role_ids.items()
            for role in [self.resolved.roles[logical_id]]
        }
        names = self.bindings.names
        if "agent_role" in names:
            host_role = f"arn:{PARTITION}:iam::{ACCOUNT}:role/db-host-instance"
            principals[HOST] = Principal(
                f"arn:{PARTITION}:sts::{ACCOUNT}:assumed-role/db-host-instance/i-0123456789abcdef0",
                (_allow("assume-agent-role", "sts:AssumeRole", names["agent_role"]),),
                host_role,
            )
        if APPROVER in self.bindings.policy_ids:
            # an on-call engineer's role of this account given the stack's callers policy of the approvals URL
            principals[APPROVER] = Principal(
                f"arn:{PARTITION}:sts::{ACCOUNT}:assumed-role/oncall-approver/alice",
                (self.resolved.managed_policies[self.bindings.policy_ids[APPROVER]],),
                f"arn:{PARTITION}:iam::{ACCOUNT}:role/oncall-approver",
            )
        # an administrator's role of the pipeline's account, whose own policy allows all of S3 and KMS
        admin_account = names.get("primary_account", ACCOUNT)
        principals[ADMIN] = Principal(
            f"arn:{PARTITION}:sts::{admin_account}:assumed-role/account-admin/alice",
            (_allow("s3-and-kms", ["s3:*", "kms:*"], "*"),),
            f"arn:{PARTITION}:iam::{admin_account}:role/account-admin",
        )
        if "deployer_role" in names:
            # the CDK bootstrap's CloudFormation execution role of the vault's environment (AdministratorAccess)
            deployer, session = names["deployer_role"], "AWSCloudFormation"
            principals[DEPLOYER] = Principal(
                f"arn:{PARTITION}:sts::{names['vault_account']}:assumed-role/{deployer.rsplit('/', 1)[1]}/{session}",
                (_allow("administrator", "*", "*"),),
                deployer,
            )
        principals[FOREIGN] = Principal(
            f"arn:{PARTITION}:sts::{FOREIGN_ACCOUNT}:assumed-role/intruder/session",
            (_allow("everything", "*", "*"),),
            f"arn:{PARTITION}:iam::{FOREIGN_ACCOUNT}:role/intruder",
        )
        return principals

    def principal(self, symbol: str) -> Principal:
        if symbol in self._principals:
            return self._principals[symbol]
        if symbol.endswith(".amazonaws.com"):
            return Principal(symbol)
        raise KeyError(f"unknown principal {symbol!r}: bind it in AccessMatrix._build_principals")

    def request(self, row: Row) -> Request:
        principal = self.principal(row.principal)
        resource = self.bindings.fill(row.resource)
        if "*" in resource or "{" in resource:
            raise ValueError(f"{row.name}: the resource must be one concrete ARN, got {resource!r}")
        context: dict[str, str | tuple[str, ...]] = {"aws:SecureTransport": "true"}
        if principal.role_arn:
            context |= {"aws:PrincipalArn": principal.role_arn, "aws:PrincipalAccount": _account(principal.arn)}
        for key, value in row.context.items():
            context[key] = (
                tuple(map(self.bindings.fill, value)) if isinstance(value, tuple) else self.bindings.fill(value)
            )
        return Request(
            principal=principal.arn,
            action=row.action,
            resource=resource,
            resource_account=self.resolved.account_of(resource),
            context=context,
            identity_policies=principal.identity_policies,
            resource_policy=self.resolved.resource_policy(resource),
        )

    def evaluate(self, rows: Sequence[Row]) -> dict[str, Verdict]:
        """Every row in one evaluator run; keyed by row name."""
        names = [row.name for row in rows]
        if len(set(names)) != len(names):
            raise ValueError(f"row names must be unique: {sorted(n for n in names if names.count(n) > 1)}")
        verdicts = self._evaluator.evaluate([self.request(row) for row in rows])
        return dict(zip(names, verdicts, strict=True))


def _account(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else ""


def decision_of(verdict: Verdict) -> Decision:
    return Decision.ALLOWED if verdict.allowed else Decision.DENIED


def explain(row: Row, request: Request, verdict: Verdict) -> str:
    """Why a row failed: the expectation, the evaluator's decision and statements, and the request."""
    context = ", ".join(f"{k}={v}" for k, v in request.context.items())
    return (
        f"{row.name}: expected {row.expected} ({row.why}), the evaluator says {verdict.decision} —"
        f" {verdict.reasons()}\n  {request.principal} {request.action} {request.resource}\n  context: {context}"
    )
