"""Run a scenario with one fault (or none) and return its end state; record every scenario's calls."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a program: the tests' import paths and fake AWS settings
    sys.path[:0] = [str(Path(__file__).parents[1]), str(Path(__file__).parents[2])]
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_DEV": "false",
        "POWERTOOLS_SERVICE_NAME": "faults",
        "POWERTOOLS_METRICS_NAMESPACE": "Faults",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        os.environ.setdefault(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)

from tests.faults.harness import Fault
from tests.faults.scenarios import BY_NAME, SCENARIOS
from tests.faults.worlds import fault_world

CENSUS = Path(__file__).with_name("calls.json")


def run(name: str, fault: Fault) -> dict[str, Any]:
    scenario = BY_NAME[name]
    with fault_world(fault, drills=scenario.drills, offsite=scenario.offsite, pitr=scenario.pitr) as world:
        scenario.setup(world)
        world.fault.armed = True
        try:
            scenario.act(world)
        finally:
            world.fault.armed = False
        scenario.settle(world)
        return world.end_state()


def census() -> dict[str, list[str]]:
    """Every AWS call each scenario's fault-free run makes, in order."""
    calls = {}
    for scenario in SCENARIOS:
        fault = Fault()
        run(scenario.name, fault)
        calls[scenario.name] = fault.calls
    return calls


def recorded() -> dict[str, list[str]]:
    return json.loads(CENSUS.read_text()) if CENSUS.exists() else {}


if __name__ == "__main__":  # python -m tests.faults.runner: re-record calls.json
    found = census()
    CENSUS.write_text(json.dumps(found, indent=1) + "\n")
    sys.stdout.write(f"{sum(map(len, found.values()))} calls in {len(found)} scenarios\n")
