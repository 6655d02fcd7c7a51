"""Every value a tenant keeps in Redis, as text: where a leak would show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobgate.client import Gateway


def tenant_values(gateway: Gateway) -> str:
    """Every value of every key of the tenant, as text (keys that expire meanwhile skipped)."""
    r = gateway.store.redis
    readers: dict[str, Callable[[str], Any]] = {
        "string": r.get,
        "hash": r.hgetall,
        "list": lambda key: r.lrange(key, 0, -1),
        "set": r.smembers,
        "zset": lambda key: r.zrange(key, 0, -1),
        "stream": r.xrange,
    }
    dump = []
    for key in r.scan_iter(match=f"jobgate:{gateway.tenant}:*", count=1000):
        kind = str(r.type(key))
        if kind != "none":
            dump.append(f"{key} {readers[kind](key)}")
    return "\n".join(dump)
