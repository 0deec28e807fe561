"""The IAM evaluator: ``@cloud-copilot/iam-simulate`` run by ``simulate.mjs``, one node process per batch.

The npm package is a test-time dev dependency (AGPL-3.0-or-later) pinned in package.json; it is never
bundled into the Lambdas or the agent. ``make install`` (``npm ci``) installs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .template import NamedPolicy

PACKAGE = "@cloud-copilot/iam-simulate"
DRIVER = Path(__file__).with_name("simulate.mjs")
REPO = Path(__file__).resolve().parents[3]
FIX = "Fix: run `make install` (npm ci installs the pinned devDependency from package-lock.json)"
TIMEOUT_S = 120

Json = Any
ContextValue = str | tuple[str, ...]


class EvaluatorUnavailableError(RuntimeError):
    """node or the npm package is missing (or not the pinned version); the message names the fix."""


class EvaluationError(RuntimeError):
    """The evaluator refused a request (invalid policy, action or resource) or crashed."""


@dataclass(frozen=True)
class Request:
    """One request as the evaluator sees it: who, what, on which ARN, with which context and policies."""

    principal: str
    action: str
    resource: str
    resource_account: str
    context: Mapping[str, ContextValue]
    identity_policies: tuple[NamedPolicy, ...]
    resource_policy: Json | None

    def simulation(self) -> dict[str, Json]:
        """The ``Simulation`` object of iam-simulate's ``runSimulation``."""
        simulation: dict[str, Json] = {
            "request": {
                "principal": self.principal,
                "action": self.action,
                "resource": {"resource": self.resource, "accountId": self.resource_account},
                "contextVariables": {k: list(v) if isinstance(v, tuple) else v for k, v in self.context.items()},
            },
            "identityPolicies": [{"name": p.name, "policy": p.document} for p in self.identity_policies],
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
        }
        if self.resource_policy is not None:
            simulation["resourcePolicy"] = self.resource_policy
        return simulation


@dataclass(frozen=True)
class Verdict:
    """The evaluator's answer: Allowed, ExplicitlyDenied or ImplicitlyDenied, and the statements behind it."""

    decision: str
    grants: tuple[Json, ...]
    denials: tuple[Json, ...]
    ignored_context_keys: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.decision == "Allowed"

    def deciding_statements(self) -> set[str]:
        """The Sids of the statements behind the decision (the grants if allowed, else the denials)."""
        reasons = self.grants if self.allowed else self.denials
        return {str(reason["statementId"]) for reason in reasons if reason.get("statementId")}

    def reasons(self) -> str:
        """Which statements granted or denied, e.g. ``identity agent[WriteOwnPrefixOnly]``."""
        reasons = self.grants if self.allowed else self.denials
        described = [_describe(reason) for reason in reasons]
        return ", ".join(described) or "no statement applies"


def _describe(reason: Json) -> str:
    kind = reason.get("denialType", "Allow")
    where = reason["policyType"]
    if reason.get("policyIdentifier"):
        where += f" {reason['policyIdentifier']}"
    if "statementIndex" in reason:
        where += f"[{reason.get('statementId') or '#' + str(reason['statementIndex'])}]"
    return where if kind == "Allow" else f"{kind.lower()} deny by {where}"


def _package_json(path: Path) -> Json:
    return json.loads(path.read_text(encoding="utf-8"))


def pinned_version(repo: Path = REPO) -> str:
    return str(_package_json(repo / "package.json")["devDependencies"][PACKAGE])


def installed_version(repo: Path = REPO) -> str | None:
    manifest = repo / "node_modules" / PACKAGE / "package.json"
    return str(_package_json(manifest)["version"]) if manifest.exists() else None


class Evaluator:
    """Evaluates batches of requests in one node process each (pytest spawns it once per session)."""

    def __init__(self, repo: Path = REPO) -> None:
        self._repo = repo
        node = shutil.which("node")
        if node is None:
            raise EvaluatorUnavailableError(f"node is not on PATH; the access matrix runs {PACKAGE} on Node. {FIX}")
        installed = installed_version(repo)
        if installed is None:
            raise EvaluatorUnavailableError(f"{PACKAGE} is not installed in {repo / 'node_modules'}. {FIX}")
        pinned = pinned_version(repo)
        if installed != pinned:
            raise EvaluatorUnavailableError(
                f"node_modules has {PACKAGE} {installed}, package.json pins {pinned}. {FIX}"
            )
        self._node = node
        self.version = installed

    def evaluate(self, requests: Sequence[Request]) -> list[Verdict]:
        batch = [{"id": str(index), "simulation": request.simulation()} for index, request in enumerate(requests)]
        completed = subprocess.run(
            [self._node, str(DRIVER)],
            input=json.dumps(batch),
            capture_output=True,
            text=True,
            cwd=self._repo,
            timeout=TIMEOUT_S,
            check=False,
        )
        if completed.returncode != 0:
            raise EvaluationError(f"{DRIVER.name} exited {completed.returncode}: {completed.stderr.strip()}")
        lines = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
        if [line["id"] for line in lines] != [item["id"] for item in batch]:
            raise EvaluationError(f"{DRIVER.name} answered {len(lines)} of {len(batch)} requests")
        verdicts = []
        for request, line in zip(requests, lines, strict=True):
            if line["resultType"] != "single":
                raise EvaluationError(
                    f"{request.principal} {request.action} {request.resource}: the evaluator returned"
                    f" {line['resultType']} {json.dumps(line.get('errors', line))}"
                )
            verdicts.append(
                Verdict(
                    decision=line["decision"],
                    grants=tuple(line["grants"]),
                    denials=tuple(line["denials"]),
                    ignored_context_keys=tuple(line["ignoredContextKeys"]),
                )
            )
        return verdicts
