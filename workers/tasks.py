"""The Celery tasks. Each is a thin wrapper over the module that does the work.

Task arguments are ids only (job id, cluster, chain token), never a spec, so
nothing a user put in a job (environment, secrets) shows in Flower or in logs.
Their annotations are the wire contract: a message whose arguments do not fit is
refused before the task runs (checked_task). A task for a job or cluster this worker
does not serve is forwarded to that cluster's queue (forwarding).
Client-facing tasks answer ``{"error": {"type", "message"}}`` for jobgate errors,
which the client raises again as the same error class.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from celery import Task
from pydantic import AfterValidator, Field

from jobgate.client import routing
from jobgate.client.errors import BackendError, JobgateError, JobNotFoundError
from jobgate.client.ids import check_job_id
from jobgate.client.models import ClusterName
from jobgate.client.submit_queue import DRAINERS
from jobgate.workers import operations, polling, reconcile, submission
from jobgate.workers.app import app
from jobgate.workers.backends.base import Stream
from jobgate.workers.checked_task import CheckedTask
from jobgate.workers.context import ClusterContext
from jobgate.workers.expiry import ExpiringCall
from jobgate.workers.forwarding import forward
from jobgate.workers.runtime import runtime

log = logging.getLogger(__name__)

SUBMIT_RETRIES = 5
#: How long one drain_submits message runs before it hands over to a new one: the
#: worker's other tasks (a poll step, a user's logs) get a pool process in between.
DRAIN_MAX_S = 5.0
#: How long after the first lapse of other drainers' claims a sweep looks at them.
SWEEP_MARGIN_S = 0.5
#: Answers hold job records and job output: keep them out of worker logs and
#: Flower, which show the first `resultrepr_maxsize` characters of every result.
PRIVATE_RESULT_REPR = 1

JobId = Annotated[str, AfterValidator(check_job_id)]
JobIds = Annotated[list[JobId], Field(min_length=1, max_length=routing.CANCEL_MANY_MAX_JOBS)]
ByteOffset = Annotated[int, Field(ge=0)]
ArrayIndex = Annotated[int, Field(ge=0)]
ChunkBytes = Annotated[int, Field(ge=1, le=routing.LOGS_MAX_BYTES)]
StageStep = Literal["begin", "complete", "abort"]
ByteCount = Annotated[int, Field(ge=0, le=5 * 1024**4)]
SubmitBatch = Annotated[list[JobId], Field(min_length=1, max_length=routing.SUBMIT_BATCH_MAX)]
DrainerSlot = Annotated[int, Field(ge=0, le=DRAINERS)]
AnyTask = Task[Any, Any]


def _served(task: AnyTask, job_id: str) -> ClusterContext:
    """The context of the job's cluster; a job of a cluster this worker does not serve
    has its message forwarded to that cluster's queue instead. JobNotFoundError if no
    such job."""
    served = runtime(app)
    cluster = served.store.cluster_of(job_id)
    if not served.serves(cluster):
        why = f"job {job_id} is on cluster {cluster}, which this worker does not serve"
        forward(task, routing.queue(cluster), why)
    return served.cluster(cluster)


def _served_cluster(task: AnyTask, cluster: str, *, client_facing: bool = False) -> ClusterContext:
    """The context of a cluster; a task for a cluster this worker does not serve is
    forwarded to that cluster's poll queue (or, `client_facing`, its client queue)."""
    served = runtime(app)
    if not served.serves(cluster):
        queue = routing.queue(cluster) if client_facing else routing.poll_queue(cluster)
        forward(task, queue, f"this worker does not serve cluster {cluster}")
    return served.cluster(cluster)


def _on_job(
    task: AnyTask, job_id: str, operation: Callable[[ClusterContext], dict[str, Any]]
) -> dict[str, Any]:
    """Run a client-facing operation in the job's cluster context; jobgate errors become
    answers (``{"error": {"type", "message"}}``) that the client raises again."""
    try:
        return operation(_served(task, job_id))
    except JobgateError as e:
        log.info("%s of job %s answered %s: %s", task.name, job_id, type(e).__name__, e)
        return {"error": {"type": type(e).__name__, "message": str(e)}}


@app.task(
    base=CheckedTask,
    name=routing.SUBMIT,
    bind=True,
    ignore_result=True,
    max_retries=SUBMIT_RETRIES,
)
def submit(self: AnyTask, job_id: JobId, cluster: ClusterName | None = None) -> None:
    """Submit the job. `cluster`, which clients send, saves reading it from the record
    first (a message without it, from an older client, still works)."""
    try:
        served = runtime(app)
        if cluster is not None and served.serves(cluster):
            ctx = served.cluster(cluster)
        else:
            ctx = _served(self, job_id)
    except JobNotFoundError:
        log.error("submit of job %s: no such record (purged, or never written)", job_id)
        return
    try:
        outcome = submission.submit_job(ctx, job_id)
        if outcome is submission.SubmitOutcome.MISROUTED:  # the message named another cluster
            ctx = _served(self, job_id)  # the record's: forwarded there if not served here
            outcome = submission.submit_job(ctx, job_id)
    except BackendError as e:
        if e.transient and self.request.retries < SUBMIT_RETRIES:
            log.warning("submit of job %s failed, will retry: %s", job_id, e)
            raise self.retry(countdown=_retry_pause_s(ctx, self.request.retries), exc=e) from e
        submission.fail_submission(ctx, job_id, e)
        log.error("submit of job %s failed: %s", job_id, e)
        return
    log.debug("submit of job %s: %s", job_id, outcome)


@app.task(base=CheckedTask, name=routing.SUBMIT_BATCH, bind=True, ignore_result=True)
def submit_batch(self: AnyTask, job_ids: SubmitBatch, cluster: ClusterName) -> None:
    """Submit a batch of a cluster's jobs (Gateway.submit_many), one after the other.

    One message for many jobs; each job is still submitted exactly once (a redelivered
    batch finds its submitted jobs recorded).
    """
    ctx = _served_cluster(self, cluster)
    for job_id in job_ids:
        _submit_one_of_many(ctx, job_id)


@app.task(base=CheckedTask, name=routing.DRAIN_SUBMITS, bind=True, ignore_result=True)
def drain_submits(
    self: AnyTask, cluster: ClusterName, slot: DrainerSlot, done: JobId | None = None
) -> None:
    """Submit the jobs of the cluster's submit queue one after the other until it is
    empty, as the drainer of `slot` (client/submit_queue.py); `done`: the job whose
    claim the drain message before this one handed over.

    Slot 0 is a sweep, sent where claims of other drainers are left: it queues again
    those that lapsed and drains as the slot it arms, if any. A drain that has run for
    DRAIN_MAX_S hands over to a new message of its slot, so that a burst of submits
    holds no pool process for long.
    """
    ctx = _served_cluster(self, cluster, client_facing=True)
    if slot == 0:
        slot = ctx.submit_queue.enqueue(cluster)
        if not slot:
            return
    handover_at = time.monotonic() + DRAIN_MAX_S
    drained = 0
    while True:
        claim = ctx.submit_queue.claim(cluster, slot, done)
        if claim.job_id is None:
            break
        _submit_one_of_many(ctx, claim.job_id)
        done, drained = claim.job_id, drained + 1
        if time.monotonic() > handover_at:
            ctx.send(routing.DRAIN_SUBMITS, cluster, slot, done)
            log.info("drainer %d of %s handed over after %d jobs", slot, cluster, drained)
            return
    if claim.first_lapse_s is not None:
        # Jobs other drainers took: should theirs have died, these come back then.
        ctx.send(routing.DRAIN_SUBMITS, cluster, 0, countdown=claim.first_lapse_s + SWEEP_MARGIN_S)
    log.debug("drainer %d of %s: %d jobs", slot, cluster, drained)


def _submit_one_of_many(ctx: ClusterContext, job_id: str) -> None:
    """Submit one job of a batch or a drain, and none of its failures stops the others.

    A transient failure hands the job to a ``jobgate.submit`` of its own that counts this
    try as its first (so a job gets SUBMIT_RETRIES + 1 tries however it came). A job on
    another cluster goes to its own message too. An unexpected error is logged and the
    job left NEW, as a failed ``jobgate.submit`` leaves it: reconcile adopts it if it
    reached the scheduler, or re-sends its submit after `resubmit_after_s`.
    """
    try:
        outcome = submission.submit_job(ctx, job_id)
    except BackendError as e:
        if not e.transient:
            submission.fail_submission(ctx, job_id, e)
            log.error("submit of job %s failed: %s", job_id, e)
            return
        log.warning("submit of job %s failed, will retry: %s", job_id, e)
        ctx.send(routing.SUBMIT, job_id, ctx.name, countdown=_retry_pause_s(ctx, 0), retries=1)
        return
    except Exception:
        log.exception("submit of job %s failed unexpectedly; reconcile takes it up", job_id)
        return
    if outcome is submission.SubmitOutcome.MISROUTED:
        ctx.send(routing.SUBMIT, job_id)  # without the cluster: the taker forwards it
    log.debug("submit of job %s: %s", job_id, outcome)


def _retry_pause_s(ctx: ClusterContext, retries: int) -> float:
    return min(60.0, ctx.profile.submit_retry_backoff_s * 2.0**retries)


@app.task(base=CheckedTask, name=routing.POLL, bind=True, ignore_result=True)
def poll(self: AnyTask, cluster: ClusterName, token: str, seq: int) -> None:
    outcome = polling.poll_step(_served_cluster(self, cluster), token, seq)
    log.debug("poll %s:%s of %s: %s", token, seq, cluster, outcome)


@app.task(base=CheckedTask, name=routing.RECONCILE, bind=True, ignore_result=True)
def reconcile_cluster(self: AnyTask, cluster: ClusterName) -> None:
    report = reconcile.reconcile(_served_cluster(self, cluster))
    log.debug("reconcile of %s: %s", cluster, report)


@app.task(
    base=ExpiringCall, name=routing.MONITOR, bind=True, resultrepr_maxsize=PRIVATE_RESULT_REPR
)
def monitor(self: AnyTask, job_id: JobId) -> dict[str, Any]:
    return _on_job(self, job_id, lambda ctx: operations.monitor_job(ctx, job_id))


@app.task(base=CheckedTask, name=routing.CANCEL, bind=True, resultrepr_maxsize=PRIVATE_RESULT_REPR)
def cancel(self: AnyTask, job_id: JobId) -> dict[str, Any]:
    return _on_job(self, job_id, lambda ctx: operations.cancel_job(ctx, job_id))


@app.task(
    base=CheckedTask, name=routing.CANCEL_MANY, bind=True, resultrepr_maxsize=PRIVATE_RESULT_REPR
)
def cancel_many(self: AnyTask, cluster: ClusterName, job_ids: JobIds) -> dict[str, Any]:
    """Cancel many jobs of `cluster` with one cancel command per chunk of backend ids."""
    try:
        ctx = _served_cluster(self, cluster, client_facing=True)
        return operations.cancel_jobs(ctx, job_ids)
    except JobgateError as e:
        log.info("%s of %d jobs answered %s: %s", self.name, len(job_ids), type(e).__name__, e)
        return {"error": {"type": type(e).__name__, "message": str(e)}}


@app.task(base=ExpiringCall, name=routing.LOGS, bind=True, resultrepr_maxsize=PRIVATE_RESULT_REPR)
def logs(
    self: AnyTask,
    job_id: JobId,
    stream: Stream,
    offset: ByteOffset,
    index: ArrayIndex | None,
    max_bytes: ChunkBytes,
) -> dict[str, Any]:
    """At most `max_bytes` (1..routing.LOGS_MAX_BYTES) of a stream's output from `offset`."""
    return _on_job(
        self,
        job_id,
        lambda ctx: operations.read_logs(ctx, job_id, stream, offset, index, max_bytes),
    )


@app.task(base=ExpiringCall, name=routing.STAGE, bind=True, resultrepr_maxsize=PRIVATE_RESULT_REPR)
def stage(self: AnyTask, job_id: JobId, step: StageStep, size: ByteCount) -> dict[str, Any]:
    """A step of the upload of a job's input bundle: `begin` (of at most `size` bytes)
    answers presigned part URLs, `complete` (of `size` parts) joins them, `abort` drops
    them. Answers hold presigned URLs: kept out of logs and Flower like every answer."""
    return _on_job(self, job_id, lambda ctx: operations.stage_inputs(ctx, job_id, step, size))


@app.task(
    base=ExpiringCall, name=routing.RETRIEVE, bind=True, resultrepr_maxsize=PRIVATE_RESULT_REPR
)
def retrieve(self: AnyTask, job_id: JobId) -> dict[str, Any]:
    """Presigned download URLs of a finished job's kept outputs and logs."""
    return _on_job(self, job_id, lambda ctx: operations.retrieve_outputs(ctx, job_id))
