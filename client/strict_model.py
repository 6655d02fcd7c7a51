"""The base of every model of the contract and of profiles."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown fields are errors, and input values stay out of error messages (they may
    be secrets)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
