"""The Lambda asset is deployable on its own: every handler imports and starts with only the asset on the path.

The asset is built the way synth builds it (``stacks.lambda_package``: the first-party packages, the
fleet as ``fleet.json`` and the binary wheels of ``requirements-lambda.txt``), but with wheels for this
machine's Python instead of the runtime's ARM64 ones, so it can be imported here. A clean interpreter
(``python -I -S``: no site-packages, no PYTHONPATH, no user site, not even the script's directory) puts
only the asset on ``sys.path``, gets each function's environment from the synthesized template, finds no
system zone database (``PYTHONTZPATH`` = an empty directory, as on Lambda images without
``/usr/share/zoneinfo``) and cannot open a socket. A dependency missing from requirements-lambda.txt, or
an import of something only the tests have (moto, pytest, local_pipeline, the CDK), fails here instead
of in the first invocation after a deploy.

The dependencies are installed by pip once per requirements-lambda.txt + Python version (cached under
build/lambda/, like synth's); a cold build needs the package index and takes ~15 s.

What this cannot see: differences between this Python and the runtime's (the wheels' platform, a
dependency that only the runtime's Python version selects by an environment marker).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from backup_contracts.fleet import Fleet, parse_fleet
from stacks.functions import HANDLERS, RUNTIME_PYTHON_VERSION
from stacks.lambda_package import LOCAL_PLATFORM, LambdaPackage, build_lambda_package, local_python_version

pytestmark = [pytest.mark.infrastructure, pytest.mark.slow]

PROBE = Path(__file__).with_name("lambda_asset_probe.py")
ACCOUNT, REGION = "123456789012", "us-east-1"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
TEST_ONLY = {"moto", "pytest", "local_pipeline", "aws_cdk", "stacks", "backup_agent", "backupctl"}


def resolve(value: Any) -> str:
    """A CloudFormation value as a plausible string (intrinsics become ARN-like names of the resource)."""
    if isinstance(value, str):
        return value
    [(function, argument)] = value.items()
    if function == "Ref":
        return PSEUDO.get(argument, f"{argument.lower()}-name")
    if function == "Fn::GetAtt":
        resource, _attribute = argument
        return f"arn:aws:service:{REGION}:{ACCOUNT}:{resource.lower()}"
    if function == "Fn::Join":
        separator, parts = argument
        return separator.join(resolve(part) for part in parts)
    raise AssertionError(f"unexpected intrinsic in a function environment: {value}")


def deployed_functions(template: Template) -> dict[str, dict[str, str]]:
    """Handler -> the environment the stack gives that function (as the template says)."""
    functions = {}
    for resource in template.find_resources("AWS::Lambda::Function").values():
        properties = resource["Properties"]
        if properties.get("Handler") in HANDLERS.values():
            variables = properties["Environment"]["Variables"]
            functions[properties["Handler"]] = {name: resolve(value) for name, value in variables.items()}
    return functions


@pytest.fixture(scope="module")
def berlin_fleet(fleet: Fleet) -> Fleet:
    """The shipped fleet with its cron target on Berlin time: loading it resolves a real zone."""
    raw = json.loads(fleet.model_dump_json())
    target = next(t for agent in raw["agents"] for t in agent["targets"] if t["schedule"].startswith("cron("))
    target["timezone"] = "Europe/Berlin"
    return parse_fleet(raw, "fleet with a Berlin target")


@pytest.fixture(scope="module")
def local_asset(berlin_fleet: Fleet) -> LambdaPackage:
    return build_lambda_package(berlin_fleet, python_version=local_python_version(), platform=LOCAL_PLATFORM)


def run_probe(
    asset: Path, tmp_path: Path, *args: str, environment: dict[str, str] | None = None, function: str = "probe"
) -> dict[str, Any]:
    no_zones = tmp_path / "no-zoneinfo"
    no_zones.mkdir(exist_ok=True)
    env = {
        **(environment or {}),
        # what the Lambda service sets in every function's environment
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{RUNTIME_PYTHON_VERSION}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "LAMBDA_TASK_ROOT": str(asset),
        # nothing of this machine: no AWS config, no zone database
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "PYTHONTZPATH": str(no_zones),
    }
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(PROBE), str(asset), *args],
        cwd=asset,  # Lambda's working directory is the code directory (fleet.json is relative to it)
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    # the probe saw the standard library, the asset and nothing else, and no system zone database
    assert [
        p for p in report["sys_path"] if p != str(asset) and not p.startswith(str(Path(report["stdlib"]).parent))
    ] == []
    assert not any("site-packages" in p for p in report["sys_path"])
    assert report["tzpath"] == [str(no_zones)]
    assert report["zone_before_asset"] == "ZoneInfoNotFoundError: 'No time zone found with key UTC'"
    assert report["forbidden_loaded"] == []
    return report


def test_the_template_deploys_every_handler_the_stack_names(template: Template) -> None:
    assert set(deployed_functions(template)) == set(HANDLERS.values())


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_each_handler_imports_and_starts_from_the_asset_alone(
    function: str, local_asset: LambdaPackage, template: Template, tmp_path: Path
) -> None:
    """Import the handler named in the template and build its runtime (settings, fleet.json, clients)."""
    spec = HANDLERS[function]
    report = run_probe(
        local_asset.asset_dir,
        tmp_path,
        "handler",
        spec,
        environment=deployed_functions(template)[spec],
        function=f"backup-pipeline-{function}",
    )

    assert report["handler"]["error"] is None, report["handler"]
    assert report["handler"]["callable"] is True
    assert report["handler"]["module_file"].startswith(str(local_asset.asset_dir))
    # the fleet's zones (UTC and Europe/Berlin) came from the bundled tzdata
    assert report["tzdata_file"].startswith(str(local_asset.asset_dir))
    # in Lambda the tracer is on (Tracing.ACTIVE): the X-Ray SDK of the [tracer] extra is bundled and used
    assert report["xray_sdk_file"].startswith(str(local_asset.asset_dir))


def test_every_import_in_the_shipped_code_resolves_from_the_asset(local_asset: LambdaPackage, tmp_path: Path) -> None:
    """Every module imports, and every import statement (also inside functions) finds its module."""
    report = run_probe(local_asset.asset_dir, tmp_path, "imports")

    assert {name: error for name, error in report["modules"].items() if error} == {}
    assert len(report["modules"]) > 40  # the walk really found the packages
    assert report["unresolved_imports"] == {}
    assert TEST_ONLY.isdisjoint(name.split(".")[0] for name in report["modules"])


def test_local_time_schedules_work_with_no_system_zone_database(local_asset: LambdaPackage, tmp_path: Path) -> None:
    """cron(30 2 * * *) in Europe/Berlin is 01:30 UTC in winter and 00:30 UTC in summer."""
    report = run_probe(local_asset.asset_dir, tmp_path, "zones")

    assert report["zones"] == {"winter": "2026-01-11T01:30:00+00:00", "summer": "2026-07-11T00:30:00+00:00"}
    assert report["tzdata_file"].startswith(str(local_asset.asset_dir))


def test_the_probe_fails_on_an_asset_without_its_dependencies(
    berlin_fleet: Fleet, template: Template, tmp_path: Path
) -> None:
    """The control: the clean interpreter does not see this venv's packages, so a missing one is an error."""
    bare = build_lambda_package(
        berlin_fleet, python_version=local_python_version(), bundle_dependencies=False, build_root=tmp_path / "build"
    )
    spec = HANDLERS["audit"]
    report = run_probe(bare.asset_dir, tmp_path, "handler", spec, environment=deployed_functions(template)[spec])

    assert report["handler"]["error"].startswith("ModuleNotFoundError: No module named")
