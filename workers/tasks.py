"""The Celery tasks. Each is a thin wrapper over the module that does the work.

Task arguments are ids only (job id, cluster, chain token), never a spec, so
nothing a user put in a job (environment, secrets) shows in Flower or in logs.
Client-facing tasks answer ``{"error": {"type", "message"}}`` for jobgate errors,
which the client raises again as the same error class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task

from jobgate.client import routing
from jobgate.client.errors import BackendError, JobgateError
from jobgate.workers import operations, polling, reconcile, submission
from jobgate.workers.app import app
from jobgate.workers.backends.base import Stream
from jobgate.workers.context import ClusterContext
from jobgate.workers.runtime import runtime

log = logging.getLogger(__name__)

SUBMIT_RETRIES = 5
#: Answers hold job records and job output: keep them out of worker logs and
#: Flower, which show the first `resultrepr_maxsize` characters of every result.
PRIVATE_RESULT_REPR = 1


def _stream(name: str) -> Stream:
    if name == "stdout":
        return "stdout"
    if name == "stderr":
        return "stderr"
    raise JobgateError(f"stream must be 'stdout' or 'stderr', not {name!r}")


def _on_job(job_id: str, operation: Callable[[ClusterContext], dict[str, Any]]) -> dict[str, Any]:
    """Run a client-facing operation in the job's cluster context; jobgate errors become
    answers (``{"error": {"type", "message"}}``) that the client raises again."""
    try:
        return operation(runtime(app).cluster_of(job_id))
    except JobgateError as e:
        return {"error": {"type": type(e).__name__, "message": str(e)}}


@app.task(name=routing.SUBMIT, bind=True, ignore_result=True, max_retries=SUBMIT_RETRIES)
def submit(self: Task[[str], None], job_id: str) -> None:
    ctx = runtime(app).cluster_of(job_id)
    try:
        outcome = submission.submit_job(ctx, job_id)
    except BackendError as e:
        if e.transient and self.request.retries < SUBMIT_RETRIES:
            log.warning("submit of job %s failed, will retry: %s", job_id, e)
            pause_s = ctx.profile.submit_retry_backoff_s * 2**self.request.retries
            raise self.retry(countdown=min(60.0, pause_s), exc=e) from e
        submission.fail_submission(ctx, job_id, e)
        log.error("submit of job %s failed: %s", job_id, e)
        return
    log.debug("submit of job %s: %s", job_id, outcome)


@app.task(name=routing.POLL, ignore_result=True)
def poll(cluster: str, token: str, seq: int) -> None:
    outcome = polling.poll_step(runtime(app).cluster(cluster), token, seq)
    log.debug("poll %s:%s of %s: %s", token, seq, cluster, outcome)


@app.task(name=routing.RECONCILE, ignore_result=True)
def reconcile_cluster(cluster: str) -> None:
    report = reconcile.reconcile(runtime(app).cluster(cluster))
    log.debug("reconcile of %s: %s", cluster, report)


@app.task(name=routing.MONITOR, resultrepr_maxsize=PRIVATE_RESULT_REPR)
def monitor(job_id: str) -> dict[str, Any]:
    return _on_job(job_id, lambda ctx: operations.monitor_job(ctx, job_id))


@app.task(name=routing.CANCEL, resultrepr_maxsize=PRIVATE_RESULT_REPR)
def cancel(job_id: str) -> dict[str, Any]:
    return _on_job(job_id, lambda ctx: operations.cancel_job(ctx, job_id))


@app.task(name=routing.LOGS, resultrepr_maxsize=PRIVATE_RESULT_REPR)
def logs(
    job_id: str, stream: str, offset: int, index: int | None, max_bytes: int
) -> dict[str, Any]:
    return _on_job(
        job_id,
        lambda ctx: operations.read_logs(ctx, job_id, _stream(stream), offset, index, max_bytes),
    )
