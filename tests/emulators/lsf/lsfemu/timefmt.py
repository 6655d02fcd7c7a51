"""Times and amounts the way LSF prints them."""

from __future__ import annotations

import time


def short(stamp: float) -> str:
    """bjobs time fields: ``Oct 22 09:22`` (no year, no seconds, day padded with a space)."""
    return time.strftime("%b %e %H:%M", time.localtime(stamp))


def event(stamp: float) -> str:
    """bhist -l / bjobs -l event prefix: ``Tue Nov 21 19:00:01``."""
    return time.strftime("%a %b %e %H:%M:%S", time.localtime(stamp))


def full(stamp: float) -> str:
    """Job report times: ``Tue Nov 21 19:00:01 2023``."""
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(stamp))


def hms(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


_UNIT_KB = {"KB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3, "PB": 1024**4, "EB": 1024**5}
_UNIT_WORD = {unit: unit[0] + "bytes" for unit in _UNIT_KB}


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def memory(kb: int, unit: str | None = None) -> str:
    """A memory amount as bjobs shows it: ``12 Mbytes``, ``5.2 Gbytes``."""
    if unit is None:
        unit = "KB"
        for name in ("GB", "MB"):
            if kb >= _UNIT_KB[name]:
                unit = name
                break
    value = kb / _UNIT_KB[unit]
    shown = round(value) if unit == "MB" else round(value, 1)
    return f"{_number(shown)} {_UNIT_WORD[unit]}"


def report_mb(kb: float) -> str:
    """Job report memory: ``9868 MB``."""
    return f"{round(kb / 1024)} MB"


def unit_name(text: str) -> str | None:
    """A -o unit prefix (``KB``, ``M``...) as one of the unit keys, or None."""
    key = text.strip().upper()
    if key and not key.endswith("B"):
        key += "B"
    return key if key in _UNIT_KB else None
