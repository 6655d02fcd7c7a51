"""Reconcile: the periodic repair pass for one cluster.

It restarts the polling chain if its lease expired (a worker died holding it),
adopts jobs that reached the scheduler but whose record missed the backend id (a
worker died between submitting and recording), re-sends the submit of jobs that
stayed NEW too long (a lost message), stores final results a dead worker did not
store, uploads again the outputs whose upload failed, removes work directories past
their retention, purges finished records past their retention, and arms a drainer for
jobs left in the submit queue (their drain message lost, or its worker dead).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from jobgate.client import routing
from jobgate.client.ids import created_at
from jobgate.client.models import JobQuery, JobStatus, Observation, StatusUpdate
from jobgate.workers.context import ClusterContext
from jobgate.workers.finalize import finalize_pending, remove_work_dirs, retry_outputs
from jobgate.workers.polling import start_chain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    chain_started: bool
    adopted: int
    resent: int
    finalized: int
    purged: int
    outputs_kept: int
    work_dirs_removed: int
    drainer_armed: bool


def reconcile(ctx: ClusterContext) -> ReconcileReport:
    now = ctx.store.now()
    purged = ctx.store.purge_expired(now)
    finalized = finalize_pending(ctx)
    outputs_kept = retry_outputs(ctx)
    removed = remove_work_dirs(ctx)
    adopted, resent = _settle_new_jobs(ctx, now)
    slot = ctx.submit_queue.enqueue(ctx.name)
    if slot:
        ctx.send(routing.DRAIN_SUBMITS, ctx.name, slot)
    chain_started = bool(ctx.store.active(ctx.name)) and start_chain(ctx)
    if chain_started:
        log.warning("cluster %s had active jobs and no polling chain; started one", ctx.name)
    return ReconcileReport(
        chain_started, adopted, resent, finalized, purged, outputs_kept, removed, bool(slot)
    )


def _settle_new_jobs(ctx: ClusterContext, now: float) -> tuple[int, int]:
    """Adopt NEW jobs the scheduler already has; re-send the submit of long-stuck ones.

    Only jobs older than one lease are considered, so a submit in flight is left alone.
    """
    profile = ctx.profile
    settle_before = now - profile.effective_lease_ttl_s
    new = JobQuery(statuses=frozenset({JobStatus.NEW}), cluster=ctx.name, limit=10_000)
    stale = [
        job_id
        for job_id in ctx.store.list_ids(new)
        if created_at(job_id).timestamp() < settle_before
    ]
    if not stale:
        return 0, 0
    on_scheduler = ctx.backend.discover(stale)
    adopt = [job_id for job_id in stale if job_id in on_scheduler]
    adopted = Observation(JobStatus.PENDING, reason="adopted by reconcile")
    updates = [
        StatusUpdate(job_id, adopted, backend_id=on_scheduler[job_id], only_from=JobStatus.NEW)
        for job_id in adopt
    ]
    ctx.record(updates, observed_at=now)
    resent = 0
    resend_before = now - profile.resubmit_after_s
    for job_id in stale:
        if job_id in on_scheduler or created_at(job_id).timestamp() > resend_before:
            continue
        if ctx.coordination.mark_resent(job_id, profile.resubmit_after_s):
            ctx.send(routing.SUBMIT, job_id, ctx.name)
            resent += 1
    if adopt or resent:
        log.warning(
            "cluster %s: adopted %d job(s), re-sent the submit of %d",
            ctx.name,
            len(adopt),
            resent,
        )
    return len(adopt), resent
