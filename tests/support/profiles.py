"""Writing the profiles the tests serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: How often the Slurm, LSF and Kubernetes test profiles poll.
INTERVAL_S = 0.5
#: What those profiles share: fixed polling every INTERVAL_S, a short lease and reconcile
#: interval (a replaced worker takes over quickly), no warning for a missing walltime.
FAST_POLLING: dict[str, Any] = {
    "poll_interval_min_s": INTERVAL_S,
    "poll_interval_max_s": INTERVAL_S,
    "lease_ttl_s": 5,
    "reconcile_interval_s": 1,
    "policy": {"warn_missing_walltime": False},
}


def write_profile(directory: Path, data: dict[str, Any], **overrides: Any) -> Path:
    """`data` with `overrides` on top, as ``<name>.yaml`` in `directory`; an override named
    after the profile's backend (``lsf={...}``) updates that block instead of replacing it."""
    block = data["backend"]
    merged = {**data, block: {**data.get(block, {}), **overrides.pop(block, {})}, **overrides}
    path = directory / f"{merged['name']}.yaml"
    path.write_text(yaml.safe_dump(merged))
    return path
