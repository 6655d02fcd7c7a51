"""The queue of recorded jobs waiting to be submitted, and the drainers that empty it.

`Gateway.submit()` does not send a Celery message per job: it adds the job to its
cluster's submit queue in Redis and sends a ``jobgate.drain_submits`` message only when
no drainer is armed, or when the queue has outgrown the armed ones (up to DRAINERS
at a time). A drainer takes the queued jobs one at a time until the queue is empty.
A job submitted alone costs what one message did; a burst of submits shares a few
messages, which is where a loop of ``submit()`` calls spent most of its time (receive,
hand-off and ack of one message per job, measured in docs/benchmarks.md).

Nothing is lost with a drainer: a job it took is claimed for CLAIM_S, and a claim that
lapses (its worker process died) is queued again by the next enqueue, the next claim
or reconcile. A job taken twice is still submitted once (workers/submission.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from jobgate.client import lua
from jobgate.client.connection import guarded
from jobgate.client.keys import Keys

#: The most drainers of one cluster at a time: fewer than a worker's default pool of 4
#: processes, so that a burst of submits leaves one for poll steps and calls (4 drainers
#: held up another cluster's polling in tests/faults/test_flood.py).
DRAINERS = 3
#: Queued jobs per armed drainer beyond which another one is armed.
JOBS_PER_DRAINER = 8
#: How long a drainer's slot stays armed without a claim: a drain message that is lost,
#: or whose worker died, frees it this soon for the next enqueue to arm again.
SLOT_TTL_MS = 30_000
#: How long a taken job stays claimed: the submit lock's time to live, so that a claim
#: lapses no sooner than the lock of its dead holder does.
CLAIM_S = 10.0


@dataclass(frozen=True)
class Claim:
    """What a drainer got: a job to submit, or none and, if other drainers hold claims,
    how long until the first of them lapses."""

    job_id: str | None
    first_lapse_s: float | None


class SubmitQueue:
    """The submit queues of one tenant's clusters."""

    def __init__(self, client: redis.Redis, keys: Keys, url: str) -> None:
        """`url` is only used in error messages, with its password masked."""
        self.keys = keys
        self.url = url
        self._enqueue = client.register_script(lua.load("submit_enqueue"))
        self._claim = client.register_script(lua.load("submit_claim"))

    @guarded
    def enqueue(self, cluster: str, job_id: str = "") -> int:
        """Queue a recorded job (none: only re-arm, for jobs queued already); returns the
        drainer slot whose ``jobgate.drain_submits`` message the caller must send, or 0."""
        slots = [self.keys.submit_drainer(cluster, slot) for slot in range(1, DRAINERS + 1)]
        keys = [self.keys.submit_queue(cluster), self.keys.submit_claims(cluster), *slots]
        return int(self._enqueue(keys=keys, args=[job_id, SLOT_TTL_MS, JOBS_PER_DRAINER]))

    @guarded
    def claim(self, cluster: str, slot: int, done: str | None) -> Claim:
        """The drainer of `slot`'s next job, after forgetting its claim of `done`."""
        keys = [
            self.keys.submit_queue(cluster),
            self.keys.submit_claims(cluster),
            self.keys.submit_drainer(cluster, slot),
        ]
        job_id, lapse = self._claim(keys=keys, args=[done or "", CLAIM_S, SLOT_TTL_MS])
        first_lapse_s = float(lapse)
        return Claim(job_id or None, first_lapse_s if first_lapse_s >= 0 else None)
