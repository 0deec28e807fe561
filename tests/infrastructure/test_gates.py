"""Gates on the synthesized app: cdk-nag AwsSolutions (no unacknowledged finding, each with a reason) and cfn-lint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from gates import CFN_LINT_ERROR, CFN_LINT_FATAL, cfn_lint
from gates import acknowledgements as _acknowledgements
from gates import violations as _violations

from stacks.app_factory import cdk_json_context

pytestmark = pytest.mark.infrastructure


def test_cdk_nag_reports_no_unacknowledged_findings(synthesized: Any) -> None:
    # The session fixture's app.synth() would already have raised on an error; warnings land in the report.
    assert _violations(synthesized.outdir) == []


def test_every_nag_acknowledgement_is_specific_and_has_a_reason(synthesized: Any) -> None:
    acknowledgements = _acknowledgements(synthesized.outdir, synthesized.stack.stack_name)
    assert acknowledgements, "expected the stack's acknowledgements in its metadata"
    for rule, reason in acknowledgements.items():
        assert "AwsSolutions-" in rule
        assert len(reason.split()) >= 8, (rule, reason)
        if "IAM5" in rule:  # wildcard findings are acknowledged one finding at a time, never wholesale
            assert "[" in rule, rule
    assert not any(path.startswith(f"/{synthesized.stack.stack_name} ") for path in acknowledgements), (
        "no stack-wide acknowledgement"
    )


def test_cdk_nag_fails_synth_on_an_insecure_bucket(tmp_path: Path) -> None:
    """The gate can fail: an unencrypted, unlogged bucket without TLS enforcement stops synth."""
    app = App(outdir=str(tmp_path), context=cdk_json_context())
    s3.Bucket(Stack(app, "Insecure"), "Bucket")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    rules = {v["ruleName"] for v in _violations(tmp_path)}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_cfn_lint_finds_no_errors_in_the_template(synthesized: Any) -> None:
    template = synthesized.outdir / f"{synthesized.stack.stack_name}.template.json"
    result = cfn_lint(template)
    assert result.returncode & (CFN_LINT_ERROR | CFN_LINT_FATAL) == 0, result.stdout + result.stderr
