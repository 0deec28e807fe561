"""Shared fixtures: the app is synthesized ONCE per test session (cdk-nag included) and reused by every test."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `stacks` lives at the project root (like app.py), not in an installed package
    sys.path.insert(0, str(REPO))

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from backup_contracts.fleet import Fleet, load_fleet, parse_fleet  # noqa: E402
from stacks.app_factory import build_app, cdk_json_context, stack_id  # noqa: E402
from stacks.pipeline_stack import PipelineStack  # noqa: E402

FLEET_FILE = REPO / "fleet.yaml"


@dataclass(frozen=True)
class Synthesized:
    app: App
    stack: PipelineStack
    outdir: Path
    template: Template

    @property
    def resources(self) -> dict[str, Any]:
        return self.template.to_json()["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)


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
