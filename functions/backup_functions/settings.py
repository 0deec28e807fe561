"""The Lambdas' environment, read once through a validated model (never ad hoc os.environ)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from backup_contracts.fleet import Fleet, load_fleet


class FunctionSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    ledger_table: str = Field(min_length=1)
    bus_name: str = Field(min_length=1)
    bucket_name: str = Field(min_length=1)
    alert_topic_arn: str = Field(min_length=1)
    kms_key_arn: str = Field(min_length=1)
    job_queue_url_prefix: str = Field(min_length=1, description="queue URL up to the queue name, ending with '/'")
    fleet_file: Path = Field(description="the validated fleet, shipped with the code")


@lru_cache(maxsize=1)
def settings() -> FunctionSettings:
    return FunctionSettings()


@lru_cache(maxsize=4)
def fleet(path: Path) -> Fleet:
    return load_fleet(path)
