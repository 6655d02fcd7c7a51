"""Finalizing a finished job: its final record goes to the Celery result backend.

The transition that finishes a job also puts it in the store's finalize set;
the result is stored (for the profile's `result_expires_s`), the job's secret env
values are deleted, and the job leaves the set. A worker that dies in between
leaves the job in the set, and its cluster's next reconcile finalizes it: at
least once, always the same record.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from celery import states
from celery.backends.base import BaseKeyValueStoreBackend

from jobgate.client.errors import JobNotFoundError

if TYPE_CHECKING:
    from jobgate.workers.context import ClusterContext

log = logging.getLogger(__name__)


def finalize(ctx: ClusterContext, job_id: str) -> None:
    store = ctx.store
    try:
        record = store.get(job_id)
    except JobNotFoundError:
        store.mark_finalized(job_id)
        return
    results = ctx.app.backend
    assert isinstance(results, BaseKeyValueStoreBackend), "jobgate's result backend is Redis"
    results.store_result(record.result_id, record.model_dump(mode="json"), states.SUCCESS)
    results.expire(results.get_key_for_task(record.result_id), ctx.profile.result_expires_s)
    store.drop_secrets(job_id)
    store.mark_finalized(job_id)
    log.info(
        "job %s finished: %s%s",
        job_id,
        record.status.value,
        f" ({record.reason})" if record.reason else "",
    )


def finalize_pending(ctx: ClusterContext) -> int:
    """Finalize this cluster's finished jobs that are still waiting for it; returns how many."""
    store, done = ctx.store, 0
    for job_id in store.pending_finalization():
        try:
            cluster = store.cluster_of(job_id)
        except JobNotFoundError:
            store.mark_finalized(job_id)
            continue
        if cluster == ctx.name:
            finalize(ctx, job_id)
            done += 1
    return done
