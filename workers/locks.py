"""Short-lived Redis locks that only their holder can release."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@contextmanager
def held(client: redis.Redis, key: str, ttl_s: float) -> Iterator[bool]:
    """Try to take the lock at `key` for up to `ttl_s`; yields whether it was taken."""
    token = uuid.uuid4().hex
    taken = bool(client.set(key, token, nx=True, px=int(ttl_s * 1000)))
    try:
        yield taken
    finally:
        if taken:
            client.eval(_RELEASE, 1, key, token)
