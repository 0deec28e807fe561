"""What app.py runs: validate the fleet first (fast, no CDK import), then build and synthesize the app.

The CDK CLI hands the app its context (cdk.json's ``context`` plus ``-c key=value``) through the
``CDK_CONTEXT_JSON`` environment variable, or through a file named by ``CONTEXT_OVERFLOW_LOCATION_ENV``
when it is large. Running ``python app.py`` directly falls back to cdk.json's own context.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from backup_contracts.fleet import FleetConfigError, load_fleet

REPO_ROOT = Path(__file__).resolve().parent.parent
FLEET_CONTEXT_KEY = "fleet"
DEFAULT_FLEET = "fleet.yaml"
CONTEXT_ENV = "CDK_CONTEXT_JSON"
CONTEXT_OVERFLOW_ENV = "CONTEXT_OVERFLOW_LOCATION_ENV"


def cli_context() -> dict[str, Any]:
    """The context the CDK CLI passed, else cdk.json's context."""
    overflow = os.environ.get(CONTEXT_OVERFLOW_ENV)
    if overflow:
        return dict(json.loads(Path(overflow).read_text(encoding="utf-8")))
    if os.environ.get(CONTEXT_ENV):
        return dict(json.loads(os.environ[CONTEXT_ENV]))
    return dict(json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8")).get("context", {}))


def fleet_path(context: dict[str, Any] | None = None) -> Path:
    """The fleet file named by the ``fleet`` context; a relative path is relative to the project root."""
    value = (cli_context() if context is None else context).get(FLEET_CONTEXT_KEY) or DEFAULT_FLEET
    path = Path(str(value))
    return path if path.is_absolute() else REPO_ROOT / path


def main() -> int:
    """Synthesize, or exit 1 with a clear message when the configuration is wrong."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = fleet_path()
    try:
        load_fleet(path)  # fail fast, before the CDK (node) starts
    except FleetConfigError as exc:
        sys.stderr.write(f"fleet configuration error: {exc}\n")
        return 1

    from stacks.app_factory import build_app
    from stacks.lambda_package import LambdaPackageError

    try:
        app = build_app(path)
    except FleetConfigError as exc:  # a limit only the stack knows (e.g. resource name lengths)
        sys.stderr.write(f"fleet configuration error: {path}: {exc}\n")
        return 1
    except LambdaPackageError as exc:
        sys.stderr.write(f"Lambda packaging error: {exc}\n")
        return 1
    app.synth()
    return 0
