"""The Lambdas' environment, defined once: the stack fills it in, the functions read it back.

``FunctionEnvironment`` names every variable (upper-cased field names) the stack must set for the
functions' settings model (``backup_functions.settings.FunctionSettings`` extends it), so the stack
imports nothing from the Lambda package and a variable added on one side without the other fails
synth: the stack builds this model, which refuses a missing or unknown field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Powertools reads these itself (service name, metrics namespace and log level of every function).
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"


def metrics_namespace(pipeline: str) -> str:
    """The CloudWatch metrics namespace (and Powertools ``service`` dimension) of a pipeline's functions."""
    return pipeline


class FunctionEnvironment(BaseModel):
    """The pipeline's resources as every function sees them (environment variable = field name upper-cased)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ledger_table: str = Field(min_length=1)
    bus_name: str = Field(min_length=1)
    bucket_name: str = Field(min_length=1)
    alert_topic_arn: str = Field(min_length=1)
    kms_key_arn: str = Field(min_length=1)
    job_queue_url_prefix: str = Field(min_length=1, description="queue URL up to the queue name, ending with '/'")
    fleet_file: str = Field(min_length=1, description="the validated fleet, shipped with the code")
    chat_topic_arn: str = Field(default="", description="the chat copy of every alert; empty without chat channels")

    def variables(self) -> dict[str, str]:
        """The environment variables, by name."""
        return {name.upper(): str(value) for name, value in self.model_dump().items()}
