"""The synthesized template's policies as concrete JSON documents, with fake but consistent ARNs.

Every ``Ref``/``Fn::GetAtt``/``Fn::Join``/``Fn::Sub`` is resolved as CloudFormation would, in account
``123456789012`` and region ``us-east-1`` (or the ``Env`` of a stack pinned elsewhere: the off-site vault),
with physical names taken from the template (``QueueName``, ``TableName``, ...) or, where CloudFormation
would generate one, derived from the logical id. Anything the resolver does not know (an intrinsic, a
resource type, an attribute, a policy-bearing resource) is an error naming what to add here: the harness
never guesses and never silently skips a policy.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"

Json = Any  # a JSON value as json.loads returns it


class TemplateResolutionError(Exception):
    """The template holds something the resolver does not understand; the message names it and the fix."""


@dataclass(frozen=True)
class NamedPolicy:
    name: str
    document: Json


@dataclass(frozen=True)
class Role:
    logical_id: str
    name: str
    arn: str
    identity_policies: tuple[NamedPolicy, ...]

    def session_arn(self, session: str = "access-matrix") -> str:
        """The principal a caller of this role signs as (an STS assumed-role session)."""
        account = self.arn.split(":")[4]
        return f"arn:{PARTITION}:sts::{account}:assumed-role/{self.name}/{session}"


# Resource types whose policies are deliberately outside the matrix (say why when adding one).
NOT_EVALUATED: dict[str, str] = {}
# Policy-bearing resource types: handled below, or listed in NOT_EVALUATED; anything else is an error.
POLICY_TYPE_PATTERN = re.compile(r"Policy$|Permission$")


@dataclass(frozen=True)
class Env:
    """The account and region a template deploys into (CloudFormation's ``AWS::AccountId``/``AWS::Region``)."""

    account: str = ACCOUNT
    region: str = REGION


def _url_queue(name: str, env: Env) -> str:
    return f"https://sqs.{env.region}.{URL_SUFFIX}/{env.account}/{name}"


@dataclass(frozen=True)
class _Kind:
    """How CloudFormation names one resource type and what its Ref and attributes return."""

    name_property: str | None
    ref: str  # the attribute Ref returns
    attributes: Mapping[str, Callable[[str, str, Env], str]]  # attribute -> (name, bus-or-empty, env) -> value
    generated_name: Callable[[str, str], str] = lambda stack, logical_id: f"{stack}-{logical_id}"


def _name(name: str, _: str, __: Env) -> str:
    return name


KINDS: dict[str, _Kind] = {
    "AWS::S3::Bucket": _Kind(
        "BucketName",
        "Name",
        {"Name": _name, "Arn": lambda n, _, e: f"arn:{PARTITION}:s3:::{n}"},
        generated_name=lambda stack, logical_id: f"{stack}-{logical_id}".lower()[:63],
    ),
    "AWS::KMS::Key": _Kind(
        None,
        "KeyId",
        {"KeyId": _name, "Arn": lambda n, _, e: f"arn:{PARTITION}:kms:{e.region}:{e.account}:key/{n}"},
        generated_name=lambda stack, logical_id: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stack}/{logical_id}")),
    ),
    "AWS::SQS::Queue": _Kind(
        "QueueName",
        "QueueUrl",
        {
            "QueueName": _name,
            "QueueUrl": lambda n, _, e: _url_queue(n, e),
            "Arn": lambda n, _, e: f"arn:{PARTITION}:sqs:{e.region}:{e.account}:{n}",
        },
    ),
    "AWS::SNS::Topic": _Kind(
        "TopicName",
        "TopicArn",
        {
            "TopicName": _name,
            "TopicArn": lambda n, _, e: f"arn:{PARTITION}:sns:{e.region}:{e.account}:{n}",
        },
    ),
    "AWS::Events::EventBus": _Kind(
        "Name",
        "Name",
        {"Name": _name, "Arn": lambda n, _, e: f"arn:{PARTITION}:events:{e.region}:{e.account}:event-bus/{n}"},
    ),
    "AWS::Events::Rule": _Kind(
        "Name",
        "Name",
        {
            "Name": _name,
            "Arn": lambda n, bus, e: f"arn:{PARTITION}:events:{e.region}:{e.account}:rule/{bus}{'/' if bus else ''}{n}",
        },
    ),
    "AWS::DynamoDB::Table": _Kind(
        "TableName",
        "Name",
        {"Name": _name, "Arn": lambda n, _, e: f"arn:{PARTITION}:dynamodb:{e.region}:{e.account}:table/{n}"},
    ),
    "AWS::IAM::Role": _Kind(
        "RoleName", "Name", {"Name": _name, "Arn": lambda n, _, e: f"arn:{PARTITION}:iam::{e.account}:role/{n}"}
    ),
    "AWS::Logs::LogGroup": _Kind(
        "LogGroupName",
        "Name",
        {"Name": _name, "Arn": lambda n, _, e: f"arn:{PARTITION}:logs:{e.region}:{e.account}:log-group:{n}:*"},
        generated_name=lambda stack, logical_id: f"/aws/{stack}/{logical_id}",
    ),
    "AWS::Lambda::Function": _Kind(
        "FunctionName",
        "Name",
        {"Name": _name, "Arn": lambda n, _, e: f"arn:{PARTITION}:lambda:{e.region}:{e.account}:function:{n}"},
    ),
    "AWS::CloudWatch::Alarm": _Kind(
        "AlarmName",
        "Name",
        {"Name": _name, "Arn": lambda n, _, e: f"arn:{PARTITION}:cloudwatch:{e.region}:{e.account}:alarm:{n}"},
    ),
}

SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class _Resolver:
    def __init__(self, stack_name: str, resources: Mapping[str, Json], env: Env) -> None:
        self._stack_name = stack_name
        self._resources = resources
        self.env = env
        self._pseudo = {
            "AWS::AccountId": env.account,
            "AWS::Region": env.region,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": stack_name,
        }

    def resolve(self, value: Json) -> Json:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attribute(logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = argument
                return separator.join(str(self.resolve(part)) for part in self.resolve(parts))
            if key == "Fn::Sub":
                return self._sub(argument)
            if key.startswith("Fn::"):
                raise TemplateResolutionError(
                    f"intrinsic {key} is not supported by the access-matrix resolver; add it to"
                    f" tests/infrastructure/access_matrix/template.py (value: {value})"
                )
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, argument: Json) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.resolve(expression) for name, expression in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name and name.split(".", 1)[0] in self._resources:
                return self.attribute(*name.split(".", 1))
            return str(self.ref(name))

        return SUB_VARIABLE.sub(substitute, text).replace("${!", "${")

    def ref(self, name: str) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        kind = self._kind(name)
        return self.attribute(name, kind.ref)

    def attribute(self, logical_id: str, attribute: str) -> str:
        kind = self._kind(logical_id)
        if attribute not in kind.attributes:
            raise TemplateResolutionError(
                f"Fn::GetAtt {logical_id}.{attribute} ({self._type(logical_id)}) is not known to the access-matrix"
                " resolver; add the attribute to KINDS in tests/infrastructure/access_matrix/template.py"
            )
        properties = self._resources[logical_id].get("Properties", {})
        bus = ""
        if self._type(logical_id) == "AWS::Events::Rule" and "EventBusName" in properties:
            bus = str(self.resolve(properties["EventBusName"]))
            bus = "" if bus == "default" else bus
        return kind.attributes[attribute](self.physical_name(logical_id), bus, self.env)

    def physical_name(self, logical_id: str) -> str:
        kind = self._kind(logical_id)
        properties = self._resources[logical_id].get("Properties", {})
        if kind.name_property and kind.name_property in properties:
            return str(self.resolve(properties[kind.name_property]))
        return kind.generated_name(self._stack_name, logical_id)

    def _type(self, logical_id: str) -> str:
        if logical_id not in self._resources:
            raise TemplateResolutionError(f"Ref/GetAtt to {logical_id!r}, which is not a resource of the template")
        return str(self._resources[logical_id]["Type"])

    def _kind(self, logical_id: str) -> _Kind:
        cfn_type = self._type(logical_id)
        if cfn_type not in KINDS:
            raise TemplateResolutionError(
                f"{logical_id} is a {cfn_type}, which the access-matrix resolver cannot name; add it to KINDS in"
                " tests/infrastructure/access_matrix/template.py"
            )
        return KINDS[cfn_type]


def resolved_resources(template: Mapping[str, Json], *, stack_name: str, env: Env | None = None) -> dict[str, Json]:
    """Every resource of ``template`` with its intrinsics resolved as CloudFormation would in ``env``."""
    resources: Mapping[str, Json] = template["Resources"]
    resolver = _Resolver(stack_name, resources, env or Env())
    return {logical_id: resolver.resolve(copy.deepcopy(resource)) for logical_id, resource in resources.items()}


# AWS::Lambda::Permission properties that are conditions of the statement they add to the function's policy.
LAMBDA_PERMISSION_CONDITIONS = {
    "SourceArn": ("ArnLike", "aws:SourceArn"),
    "SourceAccount": ("StringEquals", "aws:SourceAccount"),
    "PrincipalOrgID": ("StringEquals", "aws:PrincipalOrgID"),
    "FunctionUrlAuthType": ("StringEquals", "lambda:FunctionUrlAuthType"),
    "InvokedViaFunctionUrl": ("Bool", "lambda:InvokedViaFunctionUrl"),
}


def lambda_permission_statement(logical_id: str, properties: Json, function_arn: str) -> Json:
    """The statement an AWS::Lambda::Permission adds to its function's resource policy (as AddPermission)."""
    unknown = set(properties) - {"Action", "FunctionName", "Principal", *LAMBDA_PERMISSION_CONDITIONS}
    if unknown:
        raise TemplateResolutionError(f"{logical_id}: Lambda permission properties {sorted(unknown)} are not resolved")
    principal = str(properties["Principal"])
    if principal == "*":
        who: Json = "*"
    elif principal.endswith(".amazonaws.com"):
        who = {"Service": principal}
    elif re.fullmatch(r"[0-9]{12}", principal):
        who = {"AWS": f"arn:{PARTITION}:iam::{principal}:root"}
    else:
        who = {"AWS": principal}
    conditions: dict[str, dict[str, Json]] = {}
    for name, (operator, key) in LAMBDA_PERMISSION_CONDITIONS.items():
        if name in properties:
            value = properties[name]
            conditions.setdefault(operator, {})[key] = str(value).lower() if isinstance(value, bool) else value
    statement = {"Sid": logical_id, "Effect": "Allow", "Principal": who, "Action": properties["Action"]}
    statement["Resource"] = function_arn
    return statement | ({"Condition": conditions} if conditions else {})


def _referenced_ids(value: Json, where: str) -> list[str]:
    """The logical ids of a ``[{"Ref": id}, ...]`` (or single ``{"Ref": id}``) property."""
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) and set(item) == {"Ref"} for item in items):
        raise TemplateResolutionError(f"{where}: expected Ref(s) to resources of this template, got {value}")
    return [str(item["Ref"]) for item in items]


@dataclass(frozen=True)
class ResolvedStack:
    """Concrete ARNs, each role's identity policies and each resource's policy, ready for an IAM evaluator."""

    arns: Mapping[str, str]  # logical id -> ARN, for every resource the resolver can name
    roles: Mapping[str, Role]  # logical id -> role with its identity policies
    resource_policies: Mapping[str, Json] = field(default_factory=dict)  # resource ARN -> policy document
    managed_policies: Mapping[str, NamedPolicy] = field(default_factory=dict)  # logical id -> unattached policy
    env: Env = Env()
    # bucket ARN -> the account that owns it (an S3 ARN names none); buckets of ``env`` need no entry
    bucket_accounts: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_template(cls, template: Mapping[str, Json], *, stack_name: str, env: Env | None = None) -> ResolvedStack:
        resources: Mapping[str, Json] = template["Resources"]
        env = env or Env()
        resolver = _Resolver(stack_name, resources, env)
        arns = {
            logical_id: resolver.attribute(logical_id, "Arn")
            for logical_id, resource in resources.items()
            if "Arn" in KINDS.get(resource["Type"], _Kind(None, "", {})).attributes
        } | {
            logical_id: resolver.attribute(logical_id, "TopicArn")
            for logical_id, resource in resources.items()
            if resource["Type"] == "AWS::SNS::Topic"
        }
        attached: dict[str, list[NamedPolicy]] = {}
        resource_policies: dict[str, Json] = {}
        managed: dict[str, NamedPolicy] = {}  # customer-managed policies the stack attaches to no role
        function_statements: dict[str, list[Json]] = {}  # function ARN -> its Lambda permissions

        def set_policy(arn: str, document: Json, source: str) -> None:
            if arn in resource_policies:
                raise TemplateResolutionError(f"{source}: {arn} already has a policy; a resource holds only one")
            resource_policies[arn] = document

        for logical_id, resource in resources.items():
            cfn_type = resource["Type"]
            properties = resource.get("Properties", {})
            if cfn_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                if properties.get("Users") or properties.get("Groups"):
                    raise TemplateResolutionError(f"{logical_id}: policies on IAM users/groups are not evaluated")
                name = str(properties.get("PolicyName") or properties.get("ManagedPolicyName") or logical_id)
                document = resolver.resolve(properties["PolicyDocument"])
                for role_id in _referenced_ids(properties.get("Roles", []), f"{logical_id}.Roles"):
                    attached.setdefault(role_id, []).append(NamedPolicy(name, document))
                if cfn_type == "AWS::IAM::ManagedPolicy" and not properties.get("Roles"):
                    managed[logical_id] = NamedPolicy(name, document)
            elif cfn_type == "AWS::Lambda::Permission":
                resolved = resolver.resolve(properties)
                function = str(resolved["FunctionName"])
                if not function.startswith("arn:"):
                    function = f"arn:{PARTITION}:lambda:{env.region}:{env.account}:function:{function}"
                statement = lambda_permission_statement(logical_id, resolved, function)
                function_statements.setdefault(function, []).append(statement)
            elif cfn_type == "AWS::IAM::Role":
                set_policy(arns[logical_id], resolver.resolve(properties["AssumeRolePolicyDocument"]), logical_id)
            elif cfn_type == "AWS::KMS::Key":
                set_policy(arns[logical_id], resolver.resolve(properties["KeyPolicy"]), logical_id)
            elif cfn_type == "AWS::S3::BucketPolicy":
                (bucket,) = _referenced_ids(properties["Bucket"], f"{logical_id}.Bucket")
                set_policy(arns[bucket], resolver.resolve(properties["PolicyDocument"]), logical_id)
            elif cfn_type in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
                targets = properties["Queues"] if cfn_type == "AWS::SQS::QueuePolicy" else properties["Topics"]
                for target in _referenced_ids(targets, f"{logical_id} targets"):
                    set_policy(arns[target], resolver.resolve(properties["PolicyDocument"]), logical_id)
            elif cfn_type in NOT_EVALUATED:
                continue
            elif POLICY_TYPE_PATTERN.search(cfn_type) or "ResourcePolicy" in properties:
                raise TemplateResolutionError(
                    f"{logical_id} ({cfn_type}) carries a policy the access matrix does not evaluate yet; handle it"
                    " in ResolvedStack.from_template or list it in NOT_EVALUATED with the reason"
                )

        for function, statements in function_statements.items():
            set_policy(
                function, {"Version": "2012-10-17", "Statement": statements}, f"Lambda permissions of {function}"
            )

        roles = {}
        for logical_id, resource in resources.items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            properties = resource["Properties"]
            if properties.get("ManagedPolicyArns") or properties.get("PermissionsBoundary"):
                raise TemplateResolutionError(
                    f"{logical_id}: managed policies and permission boundaries cannot be resolved offline; give the"
                    " harness their documents before relying on the matrix"
                )
            inline = tuple(
                NamedPolicy(str(policy["PolicyName"]), resolver.resolve(policy["PolicyDocument"]))
                for policy in properties.get("Policies", [])
            )
            roles[logical_id] = Role(
                logical_id=logical_id,
                name=resolver.physical_name(logical_id),
                arn=arns[logical_id],
                identity_policies=inline + tuple(attached.pop(logical_id, [])),
            )
        if attached:
            raise TemplateResolutionError(
                f"policies attached to roles that are not in the template: {sorted(attached)}"
            )
        buckets = {arns[i]: env.account for i, r in resources.items() if r["Type"] == "AWS::S3::Bucket"}
        return cls(
            arns=arns,
            roles=roles,
            resource_policies=resource_policies,
            managed_policies=managed,
            env=env,
            bucket_accounts=buckets,
        )

    def with_resource_policies_of(self, other: ResolvedStack) -> ResolvedStack:
        """This stack's principals and policies plus ``other``'s resource policies (a stack in another account
        or region that trusts this one's roles, like the off-site vault); ``other`` may hold no role."""
        if other.roles or other.managed_policies:
            raise TemplateResolutionError("only a stack without roles or managed policies can be combined")
        shared = set(self.resource_policies) & set(other.resource_policies)
        if shared:
            raise TemplateResolutionError(f"both stacks hold a policy for {sorted(shared)}")
        return replace(
            self,
            resource_policies={**self.resource_policies, **other.resource_policies},
            bucket_accounts={**self.bucket_accounts, **other.bucket_accounts},
        )

    def account_of(self, resource_arn: str) -> str:
        """The account that owns ``resource_arn`` (S3 ARNs name none: the account of the stack holding it)."""
        holder = self.policy_holder(resource_arn)
        if holder in self.bucket_accounts:
            return self.bucket_accounts[holder]
        parts = resource_arn.split(":")
        return parts[4] if len(parts) > 5 and parts[4] else self.env.account

    def policy_holder(self, resource_arn: str) -> str:
        """The ARN whose resource policy governs a request on ``resource_arn`` (an object's bucket, ...)."""
        if resource_arn.startswith(f"arn:{PARTITION}:s3:::"):
            return resource_arn.split("/", 1)[0]
        if ":dynamodb:" in resource_arn and "/index/" in resource_arn:
            return resource_arn.split("/index/", 1)[0]
        return resource_arn

    def resource_policy(self, resource_arn: str) -> Json | None:
        return self.resource_policies.get(self.policy_holder(resource_arn))

    def statements(self) -> Iterator[tuple[str, Json]]:
        """Every statement of every identity and resource policy, with where it lives."""
        for role in self.roles.values():
            for policy in role.identity_policies:
                for statement in _as_list(policy.document["Statement"]):
                    yield f"{role.logical_id}/{policy.name}", statement
        for arn, document in self.resource_policies.items():
            for statement in _as_list(document["Statement"]):
                yield arn, statement
        for logical_id, policy in self.managed_policies.items():
            for statement in _as_list(policy.document["Statement"]):
                yield f"{logical_id}/{policy.name}", statement

    def without_statement(self, sid: str) -> ResolvedStack:
        """A copy with every statement named ``sid`` removed (for mutation tests); refuses an unknown Sid."""
        return self.with_statement(sid, lambda _: None)

    def with_statement(self, sid: str, change: Callable[[Json], Json | None]) -> ResolvedStack:
        """A copy where every statement named ``sid`` is replaced by ``change(statement)`` (dropped when that is
        None), for mutation tests; refuses an unknown Sid."""
        if not any(statement.get("Sid") == sid for _, statement in self.statements()):
            raise KeyError(f"no statement with Sid {sid!r} in the template's policies")

        def strip(document: Json) -> Json:
            stripped = copy.deepcopy(document)
            changed = [change(s) if s.get("Sid") == sid else s for s in _as_list(stripped["Statement"])]
            stripped["Statement"] = [s for s in changed if s is not None]
            return stripped

        roles = {
            logical_id: Role(
                logical_id=role.logical_id,
                name=role.name,
                arn=role.arn,
                identity_policies=tuple(NamedPolicy(p.name, strip(p.document)) for p in role.identity_policies),
            )
            for logical_id, role in self.roles.items()
        }
        policies = {arn: strip(document) for arn, document in self.resource_policies.items()}
        managed = {key: NamedPolicy(p.name, strip(p.document)) for key, p in self.managed_policies.items()}
        return replace(self, roles=roles, resource_policies=policies, managed_policies=managed)


def _as_list(value: Json) -> list[Json]:
    return value if isinstance(value, list) else [value]
