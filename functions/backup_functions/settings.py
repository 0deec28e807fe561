"""The Lambdas' environment, read once through a validated model (never ad hoc os.environ).

The variables themselves are defined once, in ``backup_contracts.environment`` (the stack sets them).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from backup_contracts.environment import FunctionEnvironment
from backup_contracts.fleet import Fleet, load_fleet


class FunctionSettings(BaseSettings, FunctionEnvironment):
    """``FunctionEnvironment`` read from the process environment (``LEDGER_TABLE``, ``BUS_NAME``, ...)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    fleet_file: Path  # type: ignore[assignment]  # the same variable, as a path


@lru_cache(maxsize=1)
def settings() -> FunctionSettings:
    return FunctionSettings()


@lru_cache(maxsize=4)
def fleet(path: Path) -> Fleet:
    return load_fleet(path)
