"""The one Lambda runtime: metrics never pile up in a warm container, even with metrics disabled."""

from __future__ import annotations

import pytest

from backup_functions.observability import count, metrics
from backup_functions.runtime import lambda_handler
from local_pipeline.runner import LambdaContext

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("disabled", ["true", "false"])
def test_no_metric_outlives_its_invocation(disabled: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Powertools neither flushes nor clears metrics while POWERTOOLS_METRICS_DISABLED is true: the next
    invocation's EMF document (once enabled again) would carry every earlier value."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", disabled)

    @lambda_handler
    def handler(event: dict[str, object], context: object) -> dict[str, object]:
        count("TestInvocations")
        return {}

    for _ in range(3):
        handler({}, LambdaContext(function_name="test-runtime"))
    assert metrics.metric_set == {}
