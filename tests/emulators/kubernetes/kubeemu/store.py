"""The object store: etcd plus the watch cache, in memory.

One cluster-wide resourceVersion counter; every write takes the next value and
appends a watch event. A bounded history of events is kept; a watch from a
resourceVersion older than the history gets 410 Expired, as from a compacted etcd.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .resources import ResourceType

JsonObj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Objects = list[JsonObj]


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    rt: ResourceType
    obj: JsonObj
    old: JsonObj | None


Events = list[Event]


def key_of(obj: JsonObj) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


class Store:
    def __init__(self, history: int = 10_000, first_rv: int = 1000) -> None:
        self.cond = threading.Condition(threading.RLock())
        self._rv = first_rv
        self._objects: dict[ResourceType, dict[Key, JsonObj]] = {}
        self._events: deque[Event] = deque()
        self._history = history
        self._compacted_rv = first_rv
        self.closed = False

    # reading ---------------------------------------------------------------
    @property
    def rv(self) -> int:
        with self.cond:
            return self._rv

    def get(self, rt: ResourceType, namespace: str, name: str) -> JsonObj | None:
        with self.cond:
            obj = self._objects.get(rt, {}).get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, rt: ResourceType, namespace: str | None = None) -> tuple[Objects, int]:
        """Copies of the objects of ``rt`` (in one namespace, or all), in key order."""
        with self.cond:
            items = [
                copy.deepcopy(obj)
                for key, obj in sorted(self._objects.get(rt, {}).items())
                if namespace is None or key[0] == namespace
            ]
            return items, self._rv

    def find(self, rt: ResourceType, predicate: Callable[[JsonObj], bool]) -> Objects:
        with self.cond:
            return [
                copy.deepcopy(obj)
                for _, obj in sorted(self._objects.get(rt, {}).items())
                if predicate(obj)
            ]

    # writing ---------------------------------------------------------------
    def _bump(self, obj: JsonObj) -> int:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        return self._rv

    def _record(self, event: Event) -> None:
        self._events.append(event)
        while len(self._events) > self._history:
            self._compacted_rv = self._events.popleft().rv
        self.cond.notify_all()

    def insert(self, rt: ResourceType, obj: JsonObj) -> JsonObj:
        with self.cond:
            stored = copy.deepcopy(obj)
            rv = self._bump(stored)
            self._objects.setdefault(rt, {})[key_of(stored)] = stored
            self._record(Event(rv, "ADDED", rt, copy.deepcopy(stored), None))
            return copy.deepcopy(stored)

    def replace(self, rt: ResourceType, obj: JsonObj) -> JsonObj:
        with self.cond:
            key = key_of(obj)
            old = self._objects[rt][key]
            stored = copy.deepcopy(obj)
            rv = self._bump(stored)
            self._objects[rt][key] = stored
            self._record(Event(rv, "MODIFIED", rt, copy.deepcopy(stored), copy.deepcopy(old)))
            return copy.deepcopy(stored)

    def mutate(
        self, rt: ResourceType, namespace: str, name: str, change: Callable[[JsonObj], None]
    ) -> JsonObj | None:
        """Read-modify-write under the lock; None when the object does not exist."""
        with self.cond:
            current = self.get(rt, namespace, name)
            if current is None:
                return None
            change(current)
            return self.replace(rt, current)

    def remove(self, rt: ResourceType, namespace: str, name: str) -> JsonObj | None:
        with self.cond:
            old = self._objects.get(rt, {}).pop((namespace, name), None)
            if old is None:
                return None
            gone = copy.deepcopy(old)
            rv = self._bump(gone)
            self._record(Event(rv, "DELETED", rt, copy.deepcopy(gone), copy.deepcopy(old)))
            return gone

    # watching --------------------------------------------------------------
    def events_after(self, rt: ResourceType, rv: int) -> Events | None:
        """Events of ``rt`` after ``rv``; None when ``rv`` is older than the history."""
        with self.cond:
            if rv < self._compacted_rv:
                return None
            return [e for e in self._events if e.rv > rv and e.rt == rt]

    @property
    def compacted_rv(self) -> int:
        with self.cond:
            return self._compacted_rv

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
