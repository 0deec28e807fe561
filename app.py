#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth` / `npx cdk deploy` (cdk.json runs `python3 app.py`), or `python app.py`.

The fleet file comes from the `fleet` context (cdk.json; override with `-c fleet=path.yaml`).
A mistake in it fails synth with a message naming the file, the entry and the fix.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

if importlib.util.find_spec("aws_cdk") is None:
    # Run by a python3 without the project's dependencies: re-run under the project venv when there is one.
    if VENV_PYTHON.exists() and Path(sys.executable).resolve() != VENV_PYTHON.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])  # noqa: S606
    sys.exit("aws-cdk-lib is not installed for this python. Fix: run `make install` (or activate .venv) first")

sys.path.insert(0, str(ROOT))  # `stacks` is imported from the project root whatever the working directory

from stacks.entrypoint import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
