"""The base of every contract model, kept apart so that event families in other modules share it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Base of every contract: unknown fields are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
