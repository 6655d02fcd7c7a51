"""Redis's clock: the one clock jobgate's records are written on.

Clients and workers run on different hosts, and their clocks disagree (minutes, on a
login node whose NTP broke). Every time jobgate writes or compares (job ids and creation
times, transition times, observation order, retention, reconcile's "stuck for too
long") is read from here, so records agree with each other whichever host wrote them.

`ServerClock` reads Redis's `TIME` once, then advances with this host's monotonic clock
(which a wall-clock step does not move) and reads `TIME` again every `RESYNC_S`, so it
costs one round trip a minute, not one per call.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import redis

RESYNC_S = 60.0


class ServerClock:
    """Epoch seconds on the Redis server's clock."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._base: tuple[float, float] | None = None  # (Redis time, monotonic) at the last read

    def now(self) -> float:
        """Now, as Redis's clock has it (epoch seconds)."""
        base = self._base
        if base is None or time.monotonic() - base[1] >= RESYNC_S:
            base = self._base = self._read(fallback=base)
        server_s, at_mono = base
        return server_s + (time.monotonic() - at_mono)

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), tz=UTC)

    def offset_s(self) -> float:
        """How far this host's wall clock is behind Redis's (negative: ahead)."""
        return self.now() - time.time()

    def _read(self, fallback: tuple[float, float] | None) -> tuple[float, float]:
        """Redis's time paired with the monotonic instant it was read at (the middle of
        the round trip). A failed re-read keeps the last pairing: the caller's own Redis
        call reports the outage, and times stay on Redis's clock meanwhile."""
        before = time.monotonic()
        try:
            seconds, microseconds = self._redis.time()
        except redis.RedisError:
            if fallback is None:
                raise
            return fallback[0] + (before - fallback[1]), before
        after = time.monotonic()
        return seconds + microseconds / 1e6, (before + after) / 2
