"""The Lua scripts of the store modules, kept as files and loaded by name.

Every write that touches several keys, or must check and change in one step, runs
as one of these; key names come from keys.py, as arguments or KEYS.
"""

from __future__ import annotations

from importlib import resources


def load(name: str) -> str:
    """The text of ``<name>.lua``."""
    return resources.files(__name__).joinpath(f"{name}.lua").read_text("utf-8")
