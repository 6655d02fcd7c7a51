"""Faults a test switches on at run time: error answers, dropped connections, latency."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from . import errors


@dataclass
class Fault:
    """Answer the next ``count`` matching requests with ``status`` (or, with
    ``status=None``, close the connection without answering). ``count=None``: always."""

    status: int | None
    count: int | None = 1
    method: str | None = None  # regex on the HTTP method, matched in full
    path: str | None = None  # regex searched in the path (no query)
    retry_after: int | None = None
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and not re.fullmatch(self.method, method, re.IGNORECASE):
            return False
        return not (self.path and not re.search(self.path, path))

    def error(self) -> errors.ApiError:
        status = self.status or 500
        if status == 429:
            err = errors.too_many_requests(self.retry_after if self.retry_after is not None else 1)
        elif status == 500:
            err = errors.internal_error(self.message or "injected fault")
        elif status == 503:
            err = errors.service_unavailable(self.message or "service unavailable")
        elif status == 504:
            err = errors.gateway_timeout(
                self.message
                or "the server was unable to return a response in the time allotted, but may "
                "still be processing the request"
            )
        else:
            err = errors.ApiError(status, "", self.message or f"injected HTTP {status}")
        if self.retry_after is not None:
            err.headers["Retry-After"] = str(self.retry_after)
        return err


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.latency_s = 0.0

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.latency_s = 0.0

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching the request, used up by one."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path) and (fault.count is None or fault.count > 0):
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
            return None
