"""The one exception the commands raise for an LSF-style failure."""

from __future__ import annotations


class LsfError(Exception):
    """A message for stderr and the exit status that goes with it."""

    def __init__(self, message: str, status: int = 255) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
