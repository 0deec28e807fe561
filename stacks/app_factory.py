"""Build the CDK app from a fleet file: validate the fleet, stage the Lambda code, add the stack and cdk-nag."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from backup_contracts.fleet import Fleet, load_fleet
from stacks.entrypoint import FLEET_CONTEXT_KEY
from stacks.entrypoint import fleet_path as context_fleet_path
from stacks.functions import RUNTIME_PYTHON_VERSION
from stacks.lambda_package import REPO_ROOT, build_lambda_package
from stacks.pipeline_stack import PipelineStack


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
    PipelineStack(
        app,
        stack_id(fleet),
        fleet=fleet,
        code=lambda_.Code.from_asset(str(package.asset_dir)),
        description=f"{fleet.pipeline.name}: event-driven backup pipeline (fleet from {path.name})",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app
