"""Watch streams: newline-delimited ``{"type": ..., "object": ...}`` events.

Without a resourceVersion (or with "0") the stream starts with an ADDED event for
every matching object; with one, it carries every event after it. An object that
stops matching the selectors is sent as DELETED, one that starts matching as ADDED
(as the watch cache does). A resourceVersion older than the kept history gets one
ERROR event with a 410 Expired Status. The stream ends after timeoutSeconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from . import errors
from .cluster import Cluster
from .listing import Filter
from .resources import ResourceType
from .store import Event

JsonObj = dict[str, Any]

DEFAULT_TIMEOUT_S = 1800.0
POLL_S = 0.25


def _line(kind: str, obj: JsonObj) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def _translate(
    event: Event, match: Filter, namespace: str, name: str
) -> tuple[str, JsonObj] | None:
    meta = event.obj["metadata"]
    if namespace and meta.get("namespace") != namespace:
        return None
    if name and meta.get("name") != name:
        return None
    now_matches = match(event.obj)
    before = event.old is not None and event.type == "MODIFIED" and match(event.old)
    if event.type == "ADDED":
        return ("ADDED", event.obj) if now_matches else None
    if event.type == "DELETED":
        return ("DELETED", event.obj) if now_matches else None
    if now_matches and before:
        return "MODIFIED", event.obj
    if now_matches:
        return "ADDED", event.obj
    if before and event.old is not None:
        gone = json.loads(json.dumps(event.old))
        gone["metadata"]["resourceVersion"] = str(event.rv)
        return "DELETED", gone
    return None


def _expired(cluster: Cluster, rv: int) -> bytes:
    err = errors.expired(f"too old resource version: {rv} ({cluster.store.compacted_rv + 1})")
    return _line("ERROR", err.status())


def stream(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    match: Filter,
    resource_version: str | None,
    timeout_s: float | None,
) -> Iterator[bytes]:
    """Check the request now (errors become the answer), then stream lazily."""
    if resource_version not in (None, "", "0"):
        try:
            int(resource_version)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {resource_version}") from None
    return _events(cluster, rt, namespace, name, match, resource_version, timeout_s)


def _events(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    match: Filter,
    resource_version: str | None,
    timeout_s: float | None,
) -> Iterator[bytes]:
    store = cluster.store
    deadline = time.monotonic() + (timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S)
    if resource_version is None or resource_version in ("", "0"):
        items, last = store.list(rt, namespace or None)
        for obj in items:
            if (not name or obj["metadata"]["name"] == name) and match(obj):
                yield _line("ADDED", obj)
    else:
        last = int(resource_version)
    while not cluster.stopping.is_set():
        with store.cond:
            events = store.events_after(rt, last)
            remaining = deadline - time.monotonic()
            if events == [] and remaining > 0 and not store.closed:
                store.cond.wait(min(POLL_S, remaining))
                continue
        if events is None:
            yield _expired(cluster, last)
            return
        for event in events:
            last = event.rv
            out = _translate(event, match, namespace, name)
            if out is not None:
                yield _line(*out)
        if time.monotonic() >= deadline or store.closed:
            return
