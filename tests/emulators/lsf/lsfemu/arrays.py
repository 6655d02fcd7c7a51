"""Job array names: ``-J "name[1-10:2,15]%3"``.

The index list is comma-separated ``start[-end[:step]]`` items; ``%N`` after the
closing bracket is how many elements may run at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import LsfError

#: lsb.params MAX_JOB_ARRAY_SIZE default: the most elements an array may have.
MAX_ARRAY_SIZE = 1000
#: The largest index LSF accepts.
MAX_INDEX = 2147483646

_ARRAY_NAME = re.compile(r"^(?P<name>[^\[\]]*)\[(?P<spec>[^\[\]]*)\](?:%(?P<limit>\d+))?$")
_ITEM = re.compile(r"^(?P<start>\d+)(?:-(?P<end>\d+)(?::(?P<step>\d+))?)?$")


@dataclass(frozen=True)
class ArrayName:
    name: str
    spec: str
    indices: list[int]
    limit: int | None


def _bad(message: str) -> LsfError:
    return LsfError(f"{message}. Job not submitted.")


def parse_job_name(text: str) -> ArrayName | None:
    """The array a -J value asks for, or None when it names a plain job."""
    if "[" not in text and "]" not in text:
        return None
    match = _ARRAY_NAME.match(text)
    if match is None:
        raise _bad("Bad job name")
    indices: list[int] = []
    for item in match["spec"].split(","):
        part = _ITEM.match(item.strip())
        if part is None:
            raise _bad("Job array index error")
        start = int(part["start"])
        end = int(part["end"]) if part["end"] else start
        step = int(part["step"]) if part["step"] else 1
        if start < 1 or end < start or step < 1:
            raise _bad("Job array index error")
        if end > MAX_INDEX:
            raise _bad("Job array index too large")
        indices.extend(range(start, end + 1, step))
        if len(indices) > MAX_ARRAY_SIZE:
            raise _bad("Job array index too large")
    limit = int(match["limit"]) if match["limit"] else None
    if limit is not None and limit < 1:
        raise _bad("Job array index error")
    return ArrayName(match["name"], match["spec"], sorted(set(indices)), limit)
