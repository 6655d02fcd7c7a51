"""One served cluster as the worker's code sees it.

A task about a cluster needs the same few things: the job store and the coordination
keys in Redis, the Celery app (to send the next task), the cluster's backend, its
profile and its S3 storage. `ClusterContext` holds them once, with the operations
every caller repeats: record what was seen (with the profile's retention), finalize a
job that finished, send a task to the cluster's queues, take queued submits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery

from jobgate.client import routing
from jobgate.client.coordination import Coordination
from jobgate.client.models import JobRecord, StatusUpdate, TransitionOutcome
from jobgate.client.profile_schema import ClusterProfile
from jobgate.client.store import JobStore
from jobgate.client.submit_queue import SubmitQueue
from jobgate.workers import finalize
from jobgate.workers.backends.base import Backend
from jobgate.workers.staging.s3 import JobStorage


@dataclass(frozen=True)
class ClusterContext:
    """A cluster this worker serves, with what it is reached through."""

    profile: ClusterProfile
    backend: Backend[Any]
    store: JobStore
    coordination: Coordination
    app: Celery
    #: The cluster's S3 storage, when its profile has one.
    storage: JobStorage | None = None

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def tenant(self) -> str:
        return self.store.keys.tenant

    @functools.cached_property
    def submit_queue(self) -> SubmitQueue:
        """The queue of recorded jobs waiting for a drainer (client/submit_queue.py)."""
        return SubmitQueue(self.store.redis, self.store.keys, self.store.url)

    def record(
        self, updates: Sequence[StatusUpdate], *, observed_at: float | None = None
    ) -> list[TransitionOutcome]:
        """Apply what was seen (each update atomically; see lua/transition.lua).
        `observed_at` is when the backend state was read, on Redis's clock (default: now)."""
        return self.store.transition_many(
            updates,
            observed_at=self.store.now() if observed_at is None else observed_at,
            retention_s=self.profile.retention_s,
        )

    def settle(self, update: StatusUpdate) -> TransitionOutcome:
        """Record one observation made now, and finalize the job if it finished it."""
        (outcome,) = self.record([update])
        if outcome.applied and update.seen.status.is_finished:
            self.finalize(update.job_id)
        return outcome

    def finalize(self, job_id: str) -> None:
        finalize.finalize(self, job_id)

    def finalize_many(self, job_ids: Sequence[str]) -> list[JobRecord]:
        """Finalize these finished jobs; the records of those that exist, as finalized."""
        return finalize.finalize_many(self, job_ids)

    def send(
        self,
        task: str,
        *args: Any,
        poll_queue: bool = False,
        countdown: float | None = None,
        retries: int = 0,
    ) -> None:
        """Queue `task` for this cluster: on its client-facing queue, or on its poll queue
        (polling chain and reconcile, where countdowns never hold up a submit); `retries`:
        the tries it had already (Celery's ``request.retries``)."""
        queue = routing.poll_queue(self.name) if poll_queue else routing.queue(self.name)
        # These tasks store no result: nothing for the sender to subscribe to.
        self.app.send_task(task, args=list(args), queue=queue, countdown=countdown,
                           ignore_result=True, retries=retries)  # fmt: skip
