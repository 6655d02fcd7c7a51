"""Client-facing tasks that arrive after their caller stopped waiting are dropped.

The client puts its deadline, on Redis's clock, in the message header
`routing.EXPIRES_AT_HEADER`; the worker compares it with Redis's clock too (Celery's own
`expires` would compare the client's clock with the worker's).
"""

from __future__ import annotations

import logging
from typing import Any

from jobgate.client import routing
from jobgate.workers.checked_task import CheckedTask
from jobgate.workers.runtime import runtime

log = logging.getLogger(__name__)


class ExpiringCall(CheckedTask):
    """A checked task whose answer nobody reads once its header's deadline has passed."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        expires_at = self.request.get(routing.EXPIRES_AT_HEADER)
        if expires_at is not None:
            late_s = runtime(self.app).store.now() - float(expires_at)
            if late_s > 0:
                log.warning("%s[%s] arrived %.1f s after its caller stopped waiting: dropped",
                            self.name, self.request.id, late_s)  # fmt: skip
                expired = f"{self.name} expired before a worker ran it"
                return {"error": {"type": "JobTimeoutError", "message": expired}}
        return super().__call__(*args, **kwargs)
