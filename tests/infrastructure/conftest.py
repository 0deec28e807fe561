"""Shared fixtures: the app is synthesized ONCE per test session (cdk-nag included) and reused by every test.

``offsite_synthesized`` does the same for the shipped fleet with a ``pipeline.offsite`` vault in another
account (the repository's fleet.yaml declares none): the pipeline stack and the vault stack.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `stacks` lives at the project root (like app.py), not in an installed package
    sys.path.insert(0, str(REPO))

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from backup_contracts.fleet import Fleet, load_fleet, parse_fleet  # noqa: E402
from backup_contracts.naming import vault_stack_name  # noqa: E402
from stacks.app_factory import build_app, cdk_json_context, stack_id  # noqa: E402
from stacks.pipeline_stack import PipelineStack  # noqa: E402
from stacks.vault import VaultStack  # noqa: E402

FLEET_FILE = REPO / "fleet.yaml"


@dataclass(frozen=True)
class SynthesizedStack:
    """One stack of an app and its template (the vault stack beside the pipeline stack)."""

    stack: Any
    template: Template

    @property
    def resources(self) -> dict[str, Any]:
        return self.template.to_json()["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))


@dataclass(frozen=True, kw_only=True)
class Synthesized(SynthesizedStack):
    """The pipeline stack of an app, with the app and where it was synthesized."""

    app: App
    stack: PipelineStack
    outdir: Path


@dataclass(frozen=True, kw_only=True)
class OffsiteSynthesized(Synthesized):
    vault: SynthesizedStack


# The vault of the offsite fixtures: another account than the pipeline's (the access matrix's 123456789012).
VAULT_ACCOUNT, VAULT_REGION, PRIMARY_ACCOUNT = "210987654321", "eu-central-1", "123456789012"
OFFSITE = {"region": VAULT_REGION, "account": VAULT_ACCOUNT, "primary_account": PRIMARY_ACCOUNT}


def offsite_fleet_file(directory: Path, **offsite: Any) -> Path:
    """The shipped fleet.yaml with ``pipeline.offsite`` (OFFSITE updated by ``offsite``), written to ``directory``."""
    raw = yaml.safe_load(FLEET_FILE.read_text(encoding="utf-8"))
    raw["pipeline"]["offsite"] = {**OFFSITE, **offsite}
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def vault_alone(fleet: Fleet) -> SynthesizedStack:
    """The vault stack of ``fleet`` in an app of its own (no Lambda package: fast), as the app factory adds it."""
    from aws_cdk import Environment

    offsite = fleet.pipeline.offsite
    assert offsite is not None
    app = App(context=cdk_json_context())
    stack = VaultStack(
        app,
        vault_stack_name(fleet.pipeline.name),
        fleet=fleet,
        env=Environment(account=offsite.account, region=offsite.region),
    )
    return SynthesizedStack(stack, Template.from_stack(stack))


@pytest.fixture(scope="session")
def offsite_synthesized(tmp_path_factory: pytest.TempPathFactory) -> OffsiteSynthesized:
    """The shipped fleet with a vault in another account and Replication Time Control, synthesized once
    (cdk-nag on both stacks); Lambda dependencies not bundled."""
    path = offsite_fleet_file(tmp_path_factory.mktemp("offsite-fleet"), replication_time_control=True)
    fleet = load_fleet(path)
    outdir = tmp_path_factory.mktemp("cdk.out-offsite")
    app = build_app(path, outdir=outdir, bundle_dependencies=False)
    app.synth()  # raises if cdk-nag reports an unacknowledged finding in either stack
    stack = app.node.find_child(stack_id(fleet))
    vault = app.node.find_child(vault_stack_name(fleet.pipeline.name))
    assert isinstance(stack, PipelineStack)
    assert isinstance(vault, VaultStack)
    return OffsiteSynthesized(
        app=app,
        stack=stack,
        outdir=outdir,
        template=Template.from_stack(stack),
        vault=SynthesizedStack(vault, Template.from_stack(vault)),
    )


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return load_fleet(FLEET_FILE)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet) -> Synthesized:
    """The real app (fleet.yaml, cdk-nag plugin on), synthesized once; Lambda dependencies not bundled."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(FLEET_FILE, outdir=outdir, bundle_dependencies=False)
    app.synth()  # raises if cdk-nag reports an unacknowledged finding
    stack = app.node.find_child(stack_id(fleet))
    assert isinstance(stack, PipelineStack)
    return Synthesized(app=app, stack=stack, outdir=outdir, template=Template.from_stack(stack))


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> Template:
    return synthesized.template


def _fleet_with(**changes: Any) -> Fleet:
    raw = json.loads(load_fleet(FLEET_FILE).model_dump_json())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and key != "retention_classes":
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return parse_fleet(raw, "test fleet")


@pytest.fixture(scope="session")
def fleet_with() -> Callable[..., Fleet]:
    """The shipped fleet with top-level sections replaced or (for mappings like pipeline) updated."""
    return _fleet_with


TWO_AGENTS = [
    {"name": "alpha", "targets": [{"name": "a-db", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "26h"}]},
    {"name": "beta", "targets": [{"name": "b-db", "engine": "sqlite", "schedule": "rate(1 day)", "rpo": "26h"}]},
]


@pytest.fixture
def bare_stack() -> Stack:
    """A bare Stack (with cdk.json's feature flags) to test one construct alone."""
    return Stack(App(context=cdk_json_context()), "Bare")
