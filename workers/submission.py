"""Submitting a job, exactly once, however often its submit message arrives.

A redelivered or duplicated ``jobgate.submit`` never starts the job twice: the
record is checked first (already submitted or finished: nothing to do), a
per-job lock keeps two deliveries from racing, and the backend is asked whether
the job already exists (submitted by a worker that died before recording it).
"""

from __future__ import annotations

import logging
import time

from celery import Celery

from jobgate.client.errors import BackendError, JobNotFoundError
from jobgate.client.models import JobStatus
from jobgate.client.profiles import ClusterProfile
from jobgate.client.store import JobStore, Observation, StatusUpdate
from jobgate.workers.backends import Backend
from jobgate.workers.finalize import finalize
from jobgate.workers.locks import held
from jobgate.workers.polling import start_chain

log = logging.getLogger(__name__)

SUBMIT_LOCK_S = 300


def submit_job(
    store: JobStore, app: Celery, backend: Backend, profile: ClusterProfile, job_id: str
) -> str:
    """Submit the job if nobody has; returns what happened. Transient BackendError propagates."""
    with held(store.redis, store.keys.submit_lock(job_id), SUBMIT_LOCK_S) as taken:
        if not taken:
            return "being submitted"
        # Read under the lock: a delivery that held it before us may have submitted.
        try:
            record = store.get(job_id)
        except JobNotFoundError:
            log.error("submit of job %s: no such record (purged, or not written)", job_id)
            return "missing"
        if record.status.is_finished:
            return "finished"
        if record.backend_id:
            start_chain(store, app, profile)
            return "already submitted"
        backend_id = backend.find(job_id)
        adopted = backend_id is not None
        if backend_id is None:
            backend_id = backend.submit(job_id, record.spec)
        outcome = store.transition(
            StatusUpdate(
                job_id,
                Observation(JobStatus.PENDING, reason="found on the cluster" if adopted else None),
                backend_id=backend_id,
                only_from=JobStatus.NEW,
            ),
            observed_at=time.time(),
            retention_s=profile.retention_s,
        )
    if outcome.outcome == "finished":
        # Cancelled while we were submitting: the job must not run.
        backend.cancel(backend_id)
        log.info("job %s was cancelled during submission; cancelled %s", job_id, backend_id)
        return "cancelled"
    start_chain(store, app, profile)
    log.info("job %s submitted to %s as %s", job_id, profile.name, backend_id)
    return "adopted" if adopted else "submitted"


def fail_submission(
    store: JobStore, app: Celery, profile: ClusterProfile, job_id: str, error: BackendError
) -> None:
    """Record a submit that cannot succeed as FAILED, with the scheduler's reason."""
    outcome = store.transition(
        StatusUpdate(job_id, Observation(JobStatus.FAILED, reason=f"submit failed: {error}")),
        observed_at=time.time(),
        retention_s=profile.retention_s,
    )
    if outcome.applied:
        finalize(store, app, job_id)
