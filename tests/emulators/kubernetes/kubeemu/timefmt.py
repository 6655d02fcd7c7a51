"""Times as the API server writes them: RFC 3339 in UTC, seconds for object fields,
nanoseconds (always nine digits, as the kubelet writes them) for log timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_PARSE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})"
)


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(when: datetime) -> str:
    """metav1.Time: second precision, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(when: datetime) -> str:
    """The kubelet's log timestamp: nine fractional digits, ``Z``."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond * 1000:09d}Z"


def parse(text: str) -> datetime:
    """RFC 3339 with an optional fraction (sub-microsecond digits are dropped)."""
    match = _PARSE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    when = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC
    )
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        when -= sign * offset
    return when
