"""Every value a tenant keeps in Redis, as text: where a leak would show."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from celery.backends.base import decompress_payload

from jobgate.client import Gateway


def tenant_values(gateway: Gateway) -> str:
    """Every value of every key of the tenant, as text (keys that expire meanwhile skipped).
    Celery's compressed results are shown decompressed, so a leak inside one shows too."""
    r = redis.Redis.from_url(gateway.url)  # bytes: a compressed result is not text
    readers: dict[str, Callable[[bytes], Any]] = {
        "string": lambda key: _text(decompress_payload(r.get(key))),
        "hash": r.hgetall,
        "list": lambda key: r.lrange(key, 0, -1),
        "set": r.smembers,
        "zset": lambda key: r.zrange(key, 0, -1),
        "stream": r.xrange,
    }
    dump = []
    try:
        for key in r.scan_iter(match=f"jobgate:{gateway.tenant}:*", count=1000):
            kind = r.type(key).decode()
            if kind != "none":
                dump.append(f"{key.decode()} {_text(readers[kind](key))}")
    finally:
        r.close()
    return "\n".join(dump)


def _text(value: Any) -> str:
    """`value` with every bytes in it decoded (unicode secrets must show as themselves)."""
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return " ".join(f"{_text(k)}={_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return " ".join(_text(v) for v in value)
    return str(value)
