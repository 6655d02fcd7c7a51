"""Values of bsub -W (run limit) and -M (memory limit)."""

from __future__ import annotations

import re

from . import config
from .errors import LsfError

_UNITS_KB = {
    "K": 1,
    "M": 1024,
    "G": 1024**2,
    "T": 1024**3,
    "P": 1024**4,
    "E": 1024**5,
    "Z": 1024**6,
}
_MEMORY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGTPEZ]B?)?(?P<hard>!)?$", re.I)
_RUNLIMIT = re.compile(r"^(?:(?P<hours>\d+):)?(?P<minutes>\d+)(?:/\S+)?$")


def memory_kb(text: str) -> int:
    """A memory amount in KB: a number in LSF_UNIT_FOR_LIMITS units, or with its own unit."""
    match = _MEMORY.match(text.strip())
    if match is None:
        raise LsfError(f"{text}: Bad argument for memory limit. Job not submitted.")
    unit = (match["unit"] or config.unit_for_limits())[0].upper()
    return max(1, int(float(match["number"]) * _UNITS_KB[unit]))


def runlimit_minutes(text: str) -> float:
    """A -W value, ``[hour:]minute[/host_name|/host_model]``, in minutes."""
    match = _RUNLIMIT.match(text.strip())
    if match is None:
        raise LsfError(f"{text}: Bad RUNLIMIT specification. Job not submitted.")
    minutes = int(match["minutes"]) + 60 * int(match["hours"] or 0)
    if minutes <= 0:
        raise LsfError(f"{text}: Bad RUNLIMIT specification. Job not submitted.")
    return float(minutes)
