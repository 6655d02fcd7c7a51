"""Writing the profiles the tests serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_profile(directory: Path, data: dict[str, Any], **overrides: Any) -> Path:
    """`data` with `overrides` on top, as ``<name>.yaml`` in `directory`; an override named
    after the profile's backend (``lsf={...}``) updates that block instead of replacing it."""
    block = data["backend"]
    merged = {**data, block: {**data.get(block, {}), **overrides.pop(block, {})}, **overrides}
    path = directory / f"{merged['name']}.yaml"
    path.write_text(yaml.safe_dump(merged))
    return path
