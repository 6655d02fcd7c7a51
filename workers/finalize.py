"""Finalizing a finished job: its final record goes to the Celery result backend.

The transition that finishes a job also puts it in the store's finalize set;
its outputs and logs are kept in S3 (jobs with inputs or outputs; staging.outputs),
the result is stored (for the profile's `result_expires_s`), the job's secret env
values and its event stream are deleted (a kept record costs its hash and history
only), and the job leaves the set. A worker that dies in between
leaves the job in the set, and its cluster's next reconcile finalizes it: at
least once, always the same record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celery import states
from celery.backends.redis import RedisBackend

from jobgate.client.connection import broker_errors
from jobgate.client.errors import JobNotFoundError
from jobgate.client.models import JobRecord
from jobgate.client.store import OUTPUTS_RETRY, WORK_DIR_REMOVAL
from jobgate.workers.staging.outputs import Kept, keep_outputs, remove_work_dir, stages_files

if TYPE_CHECKING:
    from jobgate.workers.context import ClusterContext

log = logging.getLogger(__name__)

#: How long after a failed outputs upload reconcile tries again.
OUTPUTS_RETRY_S = 10.0
#: The outputs lock's time to live; its holder renews it while an upload lasts.
OUTPUTS_LOCK_S = 30.0


def finalize(ctx: ClusterContext, job_id: str) -> None:
    finalize_many(ctx, [job_id])


def finalize_many(ctx: ClusterContext, job_ids: Sequence[str]) -> list[JobRecord]:
    """Finalize these finished jobs: their records read in one round trip, their results
    stored in one and their keys retired in one (the outputs of a job that stages files
    are kept first, job by job, under its outputs lock). Returns the records of those
    that exist, as finalized."""
    done, settled = [], []
    for job_id, record in zip(job_ids, ctx.store.get_many(job_ids), strict=True):
        if record is None:
            ctx.store.mark_finalized(job_id)
            continue
        if stages_files(record) and record.outputs is None:
            kept = _keep_outputs(ctx, record)
            if kept is None:
                done.append(record)  # another finalize keeps them, and finishes the job
                continue
            record = kept
        done.append(record)
        settled.append(record)
    store_results(ctx, settled)
    ctx.store.retire([r.id for r in settled])
    for record in settled:
        log.info("job %s finished: %s%s", record.id, record.status.value,
                 f" ({record.reason})" if record.reason else "")  # fmt: skip
    return done


def _keep_outputs(ctx: ClusterContext, record: JobRecord) -> JobRecord | None:
    """The record with its outputs kept (or marked incomplete); None if another finalize
    holds the job's outputs lock."""
    with ctx.coordination.outputs_lock(record.id, OUTPUTS_LOCK_S) as taken:
        if not taken:
            return None
        record = ctx.store.get(record.id)  # what a finalize that held the lock before kept
        if record.outputs is None:
            record = record_outputs(ctx, record, keep_outputs(ctx, record))
    return record


def store_results(ctx: ClusterContext, records: Sequence[JobRecord]) -> None:
    """The final records in the Celery result backend, each under its job's result id,
    for the profile's `result_expires_s`, in one round trip. Each is stored and published
    as Celery's Redis backend stores a task's SUCCESS, in its meta format (so
    ``AsyncResult.get()`` and a waiting result consumer see it), but pipelined: one by
    one through ``backend.store_result`` (a GET, then SETEX and PUBLISH) was most of the
    time of cancelling many jobs. Unlike ``store_result``, a later record (its outputs
    kept on a retry) replaces an earlier one."""
    if not records:
        return
    results = ctx.app.backend
    assert isinstance(results, RedisBackend), "jobgate's result backend is Redis"
    expires_s = int(ctx.profile.result_expires_s)
    done_at = ctx.app.now().isoformat()
    with results.client.pipeline() as pipe:
        for record in records:
            meta: dict[str, Any] = {
                "status": states.SUCCESS,
                "result": record.model_dump(mode="json"),
                "traceback": None,
                "children": [],
                "date_done": done_at,
                "task_id": record.result_id,
            }
            key, value = results.get_key_for_task(record.result_id), results.encode(meta)
            pipe.setex(key, expires_s, value)
            pipe.publish(key, value)
        with broker_errors(ctx.store.url):
            pipe.execute()


def record_outputs(ctx: ClusterContext, record: JobRecord, kept: Kept) -> JobRecord:
    """Store what became of the job's outputs; schedule a retry of a failed upload, or
    the removal of the work directory of a complete one."""
    store, storage, now, report = ctx.store, ctx.storage, ctx.store.now(), kept.report
    store.record_outputs(record.id, report)
    if kept.retry:
        store.schedule(OUTPUTS_RETRY, ctx.name, record.id, now + OUTPUTS_RETRY_S)
    else:
        store.done(OUTPUTS_RETRY, ctx.name, record.id)
    if report.complete and storage is not None:
        keep_s = storage.settings.work_dir_retention_s
        if keep_s:
            store.schedule(WORK_DIR_REMOVAL, ctx.name, record.id, now + keep_s)
        else:
            remove_work_dir(ctx, record.id)
    return record.model_copy(update={"outputs": report})


def retry_outputs(ctx: ClusterContext) -> int:
    """Upload again the outputs whose upload failed (S3 was down, say); returns how many
    jobs have theirs complete now."""
    store, done = ctx.store, 0
    for job_id in store.due(OUTPUTS_RETRY, ctx.name, store.now()):
        with ctx.coordination.outputs_lock(job_id, OUTPUTS_LOCK_S) as taken:
            if not taken:
                continue
            try:
                record = store.get(job_id)
            except JobNotFoundError:
                store.done(OUTPUTS_RETRY, ctx.name, job_id)
                continue
            if record.outputs is not None and record.outputs.complete:
                store.done(OUTPUTS_RETRY, ctx.name, job_id)
                continue
            record = record_outputs(ctx, record, keep_outputs(ctx, record))
        store_results(ctx, [record])
        if record.outputs is not None and record.outputs.complete:
            log.info("job %s: outputs kept on a retry", job_id)
            done += 1
    return done


def remove_work_dirs(ctx: ClusterContext) -> int:
    """Remove the work directories whose time has come; returns how many."""
    store = ctx.store
    due = store.due(WORK_DIR_REMOVAL, ctx.name, store.now())
    for job_id in due:
        remove_work_dir(ctx, job_id)
        store.done(WORK_DIR_REMOVAL, ctx.name, job_id)
    return len(due)


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
