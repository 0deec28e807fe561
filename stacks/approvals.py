"""The approvals URL: the restore function's function URL with ``AuthType AWS_IAM``, and who may call it.

Restores into protected targets are requested and approved through it (``backupctl restore`` /
``backupctl approve`` sign with SigV4), so AWS — not a typed name — tells the coordinator who asks and
who approves; the coordinator then lets only the fleet's approvers, never the requester, approve
(``backup_functions.restore.api``).

Who may call it at all is IAM's part:

- ``CallersPolicy``, a customer-managed policy with a fixed name (``<pipeline>-restore-approvals``) to
  attach to the roles, users or Identity Center permission sets of on-call engineers and approvers in
  this account: ``lambda:InvokeFunctionUrl`` on the restore function when ``lambda:FunctionUrlAuthType``
  is ``AWS_IAM``, and ``lambda:InvokeFunction`` only when ``lambda:InvokedViaFunctionUrl`` (new function
  URLs need both since October 2025), so it allows no direct invocation with a made-up request context;
- the function's resource policy names each account the fleet's approvers live in, with the same two
  conditions, so approvers of another account can call it too (their own account must still grant them
  the same actions: a cross-account call needs both sides).
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from backup_contracts.approvers import account_of
from backup_contracts.fleet import Fleet

INVOKE_URL = "lambda:InvokeFunctionUrl"
INVOKE = "lambda:InvokeFunction"


def approver_accounts(fleet: Fleet) -> list[str]:
    """Every account an approver pattern of the fleet names (pipeline-wide and per target), sorted."""
    patterns = [*fleet.pipeline.approvers, *(p for _, target in fleet.targets() for p in target.approvers)]
    return sorted({account_of(pattern) for pattern in patterns})


def callers_policy_name(pipeline: str) -> str:
    return f"{pipeline}-restore-approvals"


class RestoreApprovals(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, fleet: Fleet, function: lambda_.Function) -> None:
        super().__init__(scope, construct_id)
        self.url = function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        self.callers_policy = self._build_callers_policy(fleet, function)
        self._grant_approver_accounts(fleet, function)

    def _build_callers_policy(self, fleet: Fleet, function: lambda_.Function) -> iam.ManagedPolicy:
        return iam.ManagedPolicy(
            self,
            "CallersPolicy",
            managed_policy_name=callers_policy_name(fleet.pipeline.name),
            description=f"{fleet.pipeline.name}: request and approve restores through the approvals URL (SigV4)",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeApprovalsUrl",
                    actions=[INVOKE_URL],
                    resources=[function.function_arn],
                    conditions={"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
                ),
                iam.PolicyStatement(
                    sid="InvokeOnlyThroughTheUrl",
                    actions=[INVOKE],
                    resources=[function.function_arn],
                    conditions={"Bool": {"lambda:InvokedViaFunctionUrl": "true"}},
                ),
            ],
        )

    def _grant_approver_accounts(self, fleet: Fleet, function: lambda_.Function) -> None:
        for account in approver_accounts(fleet):
            principal = iam.AccountPrincipal(account)
            function.add_permission(
                f"ApprovalsUrl{account}",
                principal=principal,
                action=INVOKE_URL,
                function_url_auth_type=lambda_.FunctionUrlAuthType.AWS_IAM,
            )
            function.add_permission(
                f"ApprovalsUrlInvoke{account}", principal=principal, action=INVOKE, invoked_via_function_url=True
            )
