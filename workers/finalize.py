"""Finalizing a finished job: its final record goes to the Celery result backend.

The transition that finishes a job also puts it in the store's finalize set;
the result is stored (for the profile's `result_expires_s`), the job's secret env
values are deleted, and the job leaves the set. A worker that dies in between
leaves the job in the set, and its cluster's next reconcile finalizes it: at
least once, always the same record.
"""

from __future__ import annotations

import logging

from celery import Celery, states
from celery.backends.base import BaseKeyValueStoreBackend

from jobgate.client.errors import JobNotFoundError
from jobgate.client.profile_schema import ClusterProfile
from jobgate.client.store import JobStore

log = logging.getLogger(__name__)


def finalize(store: JobStore, app: Celery, job_id: str, profile: ClusterProfile) -> None:
    try:
        record = store.get(job_id)
    except JobNotFoundError:
        store.mark_finalized(job_id)
        return
    backend = app.backend
    assert isinstance(backend, BaseKeyValueStoreBackend), "jobgate's result backend is Redis"
    backend.store_result(record.result_id, record.model_dump(mode="json"), states.SUCCESS)
    backend.expire(backend.get_key_for_task(record.result_id), profile.result_expires_s)
    store.drop_secrets(job_id)
    store.mark_finalized(job_id)
    log.info(
        "job %s finished: %s%s",
        job_id,
        record.status.value,
        f" ({record.reason})" if record.reason else "",
    )


def finalize_pending(store: JobStore, app: Celery, profile: ClusterProfile) -> int:
    """Finalize this cluster's finished jobs that are still waiting for it; returns how many."""
    done = 0
    for job_id in store.pending_finalization():
        try:
            cluster = store.cluster_of(job_id)
        except JobNotFoundError:
            store.mark_finalized(job_id)
            continue
        if cluster == profile.name:
            finalize(store, app, job_id, profile)
            done += 1
    return done
