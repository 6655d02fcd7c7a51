"""Reconcile: the periodic repair pass for one cluster.

It restarts the polling chain if its lease expired (a worker died holding it),
adopts jobs that reached the scheduler but whose record missed the backend id (a
worker died between submitting and recording), re-sends the submit of jobs that
stayed NEW too long (a lost message), stores final results a dead worker did not
store, and purges finished records past their retention.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from celery import Celery

from jobgate.client import routing
from jobgate.client.ids import created_at
from jobgate.client.models import JobStatus
from jobgate.client.profiles import ClusterProfile
from jobgate.client.store import JobStore, Observation, StatusUpdate
from jobgate.workers.backends import Backend
from jobgate.workers.finalize import finalize_pending
from jobgate.workers.polling import start_chain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    chain_started: bool
    adopted: int
    resent: int
    finalized: int
    purged: int


def reconcile(
    store: JobStore, app: Celery, backend: Backend, profile: ClusterProfile
) -> ReconcileReport:
    now = time.time()
    purged = store.purge_expired(now)
    finalized = finalize_pending(store, app, profile)
    adopted, resent = _settle_new_jobs(store, app, backend, profile, now)
    chain_started = bool(store.active(profile.name)) and start_chain(store, app, profile)
    if chain_started:
        log.warning("cluster %s had active jobs and no polling chain; started one", profile.name)
    return ReconcileReport(chain_started, adopted, resent, finalized, purged)


def _settle_new_jobs(
    store: JobStore, app: Celery, backend: Backend, profile: ClusterProfile, now: float
) -> tuple[int, int]:
    """Adopt NEW jobs the scheduler already has; re-send the submit of long-stuck ones.

    Only jobs older than one lease are considered, so a submit in flight is left alone.
    """
    settle_before = now - profile.effective_lease_ttl_s
    stale = [
        job_id
        for job_id in store.list_ids(statuses={JobStatus.NEW}, cluster=profile.name, limit=10_000)
        if created_at(job_id).timestamp() < settle_before
    ]
    if not stale:
        return 0, 0
    on_scheduler = backend.discover(stale)
    adopt = [job_id for job_id in stale if job_id in on_scheduler]
    store.transition_many(
        [
            StatusUpdate(
                job_id,
                Observation(JobStatus.PENDING, reason="adopted by reconcile"),
                backend_id=on_scheduler[job_id],
                only_from=JobStatus.NEW,
            )
            for job_id in adopt
        ],
        observed_at=now,
        retention_s=profile.retention_s,
    )
    resent = 0
    resend_before = now - profile.resubmit_after_s
    for job_id in stale:
        if job_id in on_scheduler or created_at(job_id).timestamp() > resend_before:
            continue
        marker = f"{store.keys.submit_lock(job_id)}:resent"
        if store.redis.set(marker, "1", nx=True, ex=int(profile.resubmit_after_s)):
            app.send_task(routing.SUBMIT, args=[job_id], queue=routing.queue(profile.name))
            resent += 1
    if adopt or resent:
        log.warning(
            "cluster %s: adopted %d job(s), re-sent the submit of %d",
            profile.name,
            len(adopt),
            resent,
        )
    return len(adopt), resent
