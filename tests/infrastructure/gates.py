"""What the gate tests read: cdk-nag's validation report, the acknowledgements in a stack's metadata, cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
CFN_LINT_ERROR = 2  # cfn-lint's exit code is a bitmask: 2 = error, 4 = warning, 8 = informational
CFN_LINT_FATAL = 1


def violations(outdir: Path) -> list[dict[str, Any]]:
    report_file = outdir / "validation-report.json"
    if not report_file.exists():
        return []
    report = json.loads(report_file.read_text())
    return [v for plugin in report["pluginReports"] for v in plugin["violations"]]


def acknowledgements(outdir: Path, stack_name: str) -> dict[str, str]:
    """``<construct path> <rule>`` -> reason, for every acknowledgement of the stack."""
    metadata = json.loads((outdir / f"{stack_name}.metadata.json").read_text())
    found: dict[str, str] = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules":
                found |= {f"{path} {rule}": reason for rule, reason in entry["data"].items()}
    return found


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint on one template (W3005 is noise on CDK output); its exit code is a bitmask."""
    return subprocess.run(
        [str(CFN_LINT), "--ignore-checks", "W3005", "--format", "parseable", "--", str(template)],
        capture_output=True,
        text=True,
        check=False,
    )
