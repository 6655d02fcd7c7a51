"""The state every part of the emulator shares: objects, logs, deferred work."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from . import errors, timefmt
from .logs import LogStore
from .resources import NAMESPACES
from .store import Store

JsonObj = dict[str, Any]

NODE_NAME = "kubeemu-node-1"
NODE_IP = "10.0.0.11"


class Cluster:
    def __init__(self, gc_delay_s: float = 0.05, watch_history: int = 10_000) -> None:
        self.store = Store(history=watch_history)
        self.logs = LogStore()
        self.gc_delay_s = gc_delay_s
        self._timers: set[threading.Timer] = set()
        self._timer_lock = threading.Lock()
        self.stopping = threading.Event()

    def later(self, action: Callable[[], None], delay_s: float | None = None) -> None:
        """Run ``action`` after the GC delay on a daemon timer (dropped at stop)."""
        if self.stopping.is_set():
            return

        def run() -> None:
            with self._timer_lock:
                self._timers.discard(timer)
            if not self.stopping.is_set():
                action()

        timer = threading.Timer(self.gc_delay_s if delay_s is None else delay_s, run)
        timer.daemon = True
        with self._timer_lock:
            self._timers.add(timer)
        timer.start()

    def stop(self) -> None:
        self.stopping.set()
        with self._timer_lock:
            timers = list(self._timers)
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        self.store.close()

    def create_namespace(self, name: str) -> JsonObj:
        with self.store.cond:
            existing = self.store.get(NAMESPACES, "", name)
            if existing is not None:
                return existing
            return self.store.insert(NAMESPACES, new_namespace(name))

    def require_namespace(self, name: str) -> None:
        if self.store.get(NAMESPACES, "", name) is None:
            raise errors.namespace_not_found(name)


def new_uid() -> str:
    return str(uuid.uuid4())


def stamp(meta: JsonObj) -> None:
    """Server-set metadata of a new object."""
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = timefmt.rfc3339(timefmt.now())
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(field, None)


def new_namespace(name: str) -> JsonObj:
    meta: JsonObj = {"name": name, "labels": {"kubernetes.io/metadata.name": name}}
    stamp(meta)
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta,
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
