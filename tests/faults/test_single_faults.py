"""Every AWS call of every handler scenario fails once: the end state after SQS redelivery, a retried
call or the next tick equals the fault-free run's — no alert, event or job lost, doubled or changed.

The calls each scenario's fault-free run makes are recorded in ``calls.json`` (re-record with
``python -m tests.faults.runner`` after a change that adds or removes calls; ``test_census`` fails
until then). Each (scenario, call) pair is its own test; even-numbered calls fail with a ClientError,
odd-numbered ones with a connection error.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.faults.harness import FAULT_KINDS, Fault, differences
from tests.faults.runner import recorded, run
from tests.faults.scenarios import SCENARIOS

pytestmark = pytest.mark.integration

CALLS = recorded()
CASES = [
    pytest.param(scenario.name, index, id=f"{scenario.name}-{index:02d}-{call}")
    for scenario in SCENARIOS
    for index, call in enumerate(CALLS.get(scenario.name, []))
]


@pytest.fixture(autouse=True)
def _aws(aws_credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_DEV", "false")


@functools.cache
def fault_free(name: str) -> tuple[tuple[str, ...], Any]:
    fault = Fault()
    state = run(name, fault)
    return tuple(fault.calls), state


@pytest.mark.parametrize("name", [scenario.name for scenario in SCENARIOS])
def test_census(name: str) -> None:
    calls, _ = fault_free(name)
    assert list(calls) == CALLS.get(name), "the scenario's calls changed: re-record with python -m tests.faults.runner"


@pytest.mark.parametrize(("name", "index"), CASES)
def test_one_failed_call_leaves_the_fault_free_end_state(name: str, index: int) -> None:
    calls, expected = fault_free(name)
    fault = Fault(index=index, kind=FAULT_KINDS[index % 2])

    actual = run(name, fault)

    assert fault.fired == calls[index], f"the fault hit {fault.fired}, not call {index} ({calls[index]})"
    problems = differences(expected, actual)
    assert not problems, f"{fault.kind} in {fault.fired} (call {index}):\n  " + "\n  ".join(problems)
