"""Job ids: 26 lowercase characters, sortable by creation time.

The first 10 characters are the creation time in milliseconds (Crockford
base32), the last 16 are random. Lexical order is creation order, which lets the
list indexes in Redis page by id alone, and every id is a valid RFC 1123 label,
so it can appear in scheduler job names and Kubernetes labels unchanged.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime

from jobgate.client.errors import SpecInvalidError

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 10
_RANDOM_CHARS = 16
JOB_ID_PATTERN = re.compile(rf"^[{_ALPHABET}]{{{_TIME_CHARS + _RANDOM_CHARS}}}$")


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def time_prefix(at: datetime) -> str:
    """The id prefix of a job created at `at` (for index range queries)."""
    return _encode(int(at.timestamp() * 1000), _TIME_CHARS)


def new_job_id(now_s: float | None = None) -> str:
    """A fresh job id for a job created now (or at `now_s`)."""
    ms = int((time.time() if now_s is None else now_s) * 1000)
    return _encode(ms, _TIME_CHARS) + _encode(secrets.randbits(5 * _RANDOM_CHARS), _RANDOM_CHARS)


def created_at(job_id: str) -> datetime:
    """The creation time encoded in a job id."""
    ms = 0
    for char in job_id[:_TIME_CHARS]:
        ms = ms * 32 + _ALPHABET.index(char)
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def check_job_id(job_id: str) -> str:
    """Return `job_id` if it has the form of a jobgate id, else raise SpecInvalidError."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise SpecInvalidError(
            f"job id {job_id!r} is not a jobgate id (26 characters from {_ALPHABET!r})"
        )
    return job_id
