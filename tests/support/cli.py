"""The `jobgate` command of this environment, run against a test's gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jobgate.client import Gateway

JOBGATE = str(Path(sys.executable).parent / "jobgate")


def jobgate(gateway: Gateway, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `jobgate ARGS` with the gateway's Redis and tenant in its environment."""
    env = {**os.environ, "JOBGATE_URL": gateway.url, "JOBGATE_TENANT": gateway.tenant}
    return subprocess.run(
        [JOBGATE, *args], env=env, capture_output=True, text=True, timeout=120, check=check
    )
