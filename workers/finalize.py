"""Finalizing a finished job: its final record goes to the Celery result backend.

The transition that finishes a job also puts it in the store's finalize set;
the result is stored and the job taken out of the set afterwards. A worker that
dies in between leaves the job in the set, and the next poll or reconcile
stores it then: at least once, always the same record.
"""

from __future__ import annotations

import logging

from celery import Celery, states

from jobgate.client.errors import JobNotFoundError
from jobgate.client.store import JobStore

log = logging.getLogger(__name__)


def finalize(store: JobStore, app: Celery, job_id: str) -> None:
    try:
        record = store.get(job_id)
    except JobNotFoundError:
        store.mark_finalized(job_id)
        return
    app.backend.store_result(record.result_id, record.model_dump(mode="json"), states.SUCCESS)
    store.mark_finalized(job_id)
    log.info(
        "job %s finished: %s%s",
        job_id,
        record.status.value,
        f" ({record.reason})" if record.reason else "",
    )


def finalize_pending(store: JobStore, app: Celery) -> int:
    """Store the results of finished jobs that are still waiting for it; returns how many."""
    pending = store.pending_finalization()
    for job_id in pending:
        finalize(store, app, job_id)
    return len(pending)
