"""The functions' logging: every logger of the Lambda packages writes Powertools JSON with the invocation's
correlation id, through one handler that masks secrets (integration: importing Powertools' Tracer
opens the X-Ray SDK's UDP emitter socket, which the unit tier blocks)."""

from __future__ import annotations

import logging

import pytest
from contracts.test_redaction import FORMS, assert_masked, registered_secret, text_with  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_every_function_logger_writes_masked_powertools_json_with_the_correlation_id(form: str, function_logs) -> None:
    from backup_functions.observability import logger

    logger.set_correlation_id("run-42")
    try:
        logging.getLogger("backup_functions.restore.planning").warning("restore failed: %s", text_with(form))
    finally:
        logger.set_correlation_id(None)

    [line] = function_logs.lines()
    assert line["correlation_id"] == "run-42"
    assert line["level"] == "WARNING"
    assert line["name"] == "backup_functions.restore.planning"
    assert_masked(line["message"], form)
