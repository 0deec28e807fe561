"""Build the CDK app from a fleet file: validate the fleet, stage the Lambda code, add the stacks and cdk-nag.

With ``pipeline.offsite`` the app holds two stacks: the vault (``<pipeline>-vault``, in the vault's account
and region) and the pipeline stack, which depends on it (deploy order: vault first) and is pinned to
``offsite.primary_account``, the account the vault trusts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from backup_contracts.fleet import Fleet, FleetConfigError, load_fleet
from backup_contracts.naming import vault_stack_name
from stacks.entrypoint import FLEET_CONTEXT_KEY
from stacks.entrypoint import fleet_path as context_fleet_path
from stacks.functions import RUNTIME_PYTHON_VERSION
from stacks.lambda_package import REPO_ROOT, build_lambda_package
from stacks.pipeline_stack import PipelineStack
from stacks.vault import VaultStack


def cdk_json_context() -> dict[str, object]:
    """The context of cdk.json (feature flags, fleet), so in-process apps behave like `npx cdk synth`."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8")).get("context", {})
    return dict(context)


def stack_id(fleet: Fleet) -> str:
    """CloudFormation stack name = the pipeline name (unique per account and region)."""
    return fleet.pipeline.name


def fleet_path_from(app: App) -> Path:
    """The fleet file named by the app's ``fleet`` context (cdk.json or ``-c fleet=...``)."""
    return context_fleet_path({FLEET_CONTEXT_KEY: app.node.try_get_context(FLEET_CONTEXT_KEY)})


def build_app(
    fleet_path: str | Path | None = None,
    *,
    outdir: str | Path | None = None,
    bundle_dependencies: bool = True,
    context: dict[str, object] | None = None,
) -> App:
    """Create the app (raises FleetConfigError naming file, entry and fix when the fleet is wrong)."""
    from aws_cdk import aws_lambda as lambda_

    # cdk.json's context first; CLI context (CDK_CONTEXT_JSON, `-c key=value`) still overrides it.
    app = App(outdir=str(outdir) if outdir else None, context={**cdk_json_context(), **(context or {})})
    path = Path(fleet_path) if fleet_path is not None else fleet_path_from(app)
    fleet = load_fleet(path)
    package = build_lambda_package(
        fleet, python_version=RUNTIME_PYTHON_VERSION, bundle_dependencies=bundle_dependencies
    )
    offsite = fleet.pipeline.offsite
    if offsite is not None and os.environ.get("CDK_DEFAULT_REGION") == offsite.region:
        raise FleetConfigError(
            f"pipeline > offsite > region: {offsite.region} is the region the pipeline stack deploys into"
            " (CDK_DEFAULT_REGION, from your AWS credentials), so the vault would not outlive a region."
            " Fix: put the vault in another region, or deploy the pipeline with credentials of its own region"
        )
    pipeline = PipelineStack(
        app,
        stack_id(fleet),
        fleet=fleet,
        code=lambda_.Code.from_asset(str(package.asset_dir)),
        description=f"{fleet.pipeline.name}: event-driven backup pipeline (fleet from {path.name})",
        # The vault trusts roles of this account by ARN: `cdk deploy` refuses credentials of another one.
        env=Environment(account=offsite.primary_account) if offsite is not None else None,
    )
    if offsite is not None:
        vault = VaultStack(
            app,
            vault_stack_name(fleet.pipeline.name),
            fleet=fleet,
            env=Environment(account=offsite.account, region=offsite.region),
            description=f"{fleet.pipeline.name}: off-site vault of the backups (fleet from {path.name})",
        )
        # The replication rule names the vault's bucket and key alias: they must exist first.
        pipeline.add_stack_dependency(vault, "replication into the vault needs its bucket and key")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app
