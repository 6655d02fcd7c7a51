"""Riding out a Redis outage while following a job.

A script that waits hours for a Slurm job must not read a Redis restart or a Sentinel
failover as the job's failure. `Job.wait()` and `Job.logs(follow=True)` make their Redis
calls through an `OutageRider`: a call that finds Redis unavailable is retried with
backoff (0.5 s doubling to 5 s), and the outage is given up on only once Redis has been
unreachable for `outage_s` in a row, or when the caller's own deadline comes first
(both raise `BrokerUnavailableError`: the outage is the cause, not the job).
Everything else (a missing job, a refused spec) raises at once, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from jobgate.client.errors import BrokerUnavailableError, PermissionDeniedError

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

#: How long following a job keeps retrying while Redis stays unavailable, by default.
DEFAULT_OUTAGE_S = 300.0
FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 5.0


class OutageRider:
    """Retries calls while Redis is unavailable; one outage is the time between the
    first failing call and the next one that succeeds, whichever calls they were."""

    def __init__(self, outage_s: float, deadline: float | None, what: str) -> None:
        """`deadline` is on the monotonic clock (None: none); `what` names the caller's
        work in messages ("waiting for job …")."""
        self.outage_s = outage_s
        self.deadline = deadline
        self.what = what
        self._down_since: float | None = None
        self._pause_s = FIRST_PAUSE_S

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)`, again after a pause while Redis is unavailable."""
        while True:
            try:
                result = fn(*args, **kwargs)
            except PermissionDeniedError:
                raise  # an ACL refusal is no outage: waiting grants nothing
            except BrokerUnavailableError as e:
                self._wait_out(e)
                continue
            if self._down_since is not None:
                log.warning("%s: Redis is back after %.1f s", self.what,
                            time.monotonic() - self._down_since)  # fmt: skip
                self._down_since, self._pause_s = None, FIRST_PAUSE_S
            return result

    def _wait_out(self, error: BrokerUnavailableError) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            log.warning("%s: %s; retrying for up to %g s", self.what, error, self.outage_s)
        down_s = now - self._down_since
        if down_s >= self.outage_s:
            raise BrokerUnavailableError(
                error.url, f"{error.cause} (unavailable for {down_s:.0f} s, {self.what})"
            ) from error
        if self.deadline is not None and now + self._pause_s >= self.deadline:
            # The outage, not the job, is why the caller's time ran out: say so.
            raise BrokerUnavailableError(
                error.url, f"{error.cause} (still unavailable at the deadline, {self.what})"
            ) from error
        time.sleep(self._pause_s)
        self._pause_s = min(LONGEST_PAUSE_S, self._pause_s * 2)
