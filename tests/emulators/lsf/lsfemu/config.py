"""The emulator's settings, read from the environment of each command.

Everything a test can tune is an ``LSF_EMULATOR_*`` variable (see README.md);
``LSF_UNIT_FOR_LIMITS`` is the real lsf.conf parameter of that name.
"""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

from .errors import LsfError

#: The variable naming the state directory; without it LSF counts as not installed.
STATE_DIR_VAR = "LSF_EMULATOR_DIR"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        return default


def state_dir(command: str) -> Path:
    """The state directory, or the error LSF gives when it finds no lsf.conf."""
    raw = os.environ.get(STATE_DIR_VAR, "").strip()
    if not raw:
        tail = ". Job not submitted." if command == "bsub" else ""
        raise LsfError(
            "lsb_init: Failed in an LSF library call: Unable to open file lsf.conf" + tail
        )
    path = Path(raw).resolve()
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


def queues() -> list[str]:
    """Configured queue names; the first is the default queue."""
    names = [q.strip() for q in os.environ.get("LSF_EMULATOR_QUEUES", "").split(",")]
    return [q for q in names if q] or ["normal"]


def max_slots() -> int:
    """The most slots one job may ask for (-n) before bsub rejects it."""
    return int(_float("LSF_EMULATOR_MAX_SLOTS", 4096))


def minute_s() -> float:
    """Seconds per emulated minute of a -W run limit."""
    return _float("LSF_EMULATOR_MINUTE_S", 60.0)


def clean_period_s() -> float:
    """How long finished jobs stay visible to bjobs (lsb.params CLEAN_PERIOD)."""
    return _float("LSF_EMULATOR_CLEAN_PERIOD", 3600.0)


def retry_s() -> float:
    """How long a command retries an unresponsive mbatchd before giving up."""
    return _float("LSF_EMULATOR_RETRY_S", 2.0)


def terminate_interval_s() -> float:
    """Time between SIGINT, SIGTERM and SIGKILL (lsb.params JOB_TERMINATE_INTERVAL)."""
    return _float("LSF_EMULATOR_TERMINATE_INTERVAL_S", 0.5)


def unit_for_limits() -> str:
    """lsf.conf LSF_UNIT_FOR_LIMITS: the unit of -M and rusage[mem] numbers."""
    unit = os.environ.get("LSF_UNIT_FOR_LIMITS", "KB").strip().upper() or "KB"
    return unit if unit in {"KB", "MB", "GB", "TB", "PB", "EB", "ZB"} else "KB"


def hostname() -> str:
    """The one host of the emulated cluster: submission and execution host."""
    return os.environ.get("LSF_EMULATOR_HOST", "").strip() or socket.gethostname()


def cluster() -> str:
    """The cluster's name."""
    return os.environ.get("LSF_EMULATOR_CLUSTER", "").strip() or "lsfemu"


def user() -> str:
    """The user running the command."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
