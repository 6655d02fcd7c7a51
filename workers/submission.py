"""Submitting a job, exactly once, however often its submit message arrives.

A redelivered or duplicated ``jobgate.submit`` never starts the job twice: the
record is checked first (already submitted or finished: nothing to do), a
per-job lock keeps two deliveries from racing, and the backend is asked whether
the job already exists (submitted by a worker that died before recording it).
A delivery that finds the lock held waits for it rather than give up: its holder may
have died mid-submit (a redelivered message), and then only this delivery is left to
submit the job; if the holder lives, the wait ends with the job recorded.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from jobgate.client.credentials import REDACTED
from jobgate.client.errors import BackendError, JobNotFoundError
from jobgate.client.models import (
    JobRecord,
    JobSpec,
    JobStatus,
    Observation,
    StatusUpdate,
    TransitionResult,
)
from jobgate.client.policy import blocking, evaluate_policy
from jobgate.client.profiles import apply_defaults
from jobgate.workers.backends.base import DEPENDENCY_FAILED, JobSubmission
from jobgate.workers.backends.jobfiles import FileBackend
from jobgate.workers.context import ClusterContext
from jobgate.workers.polling import start_chain
from jobgate.workers.secret_handling import SCRUBBER, with_secrets
from jobgate.workers.staging.inputs import InputsError, unpack_inputs

log = logging.getLogger(__name__)

#: The submit lock's time to live: its holder renews it, so a dead holder's lock frees
#: this soon, whatever a submit may take. Another delivery waits a little longer for it.
SUBMIT_LOCK_S = 10.0
SUBMIT_LOCK_WAIT_S = 1.5 * SUBMIT_LOCK_S
POLICY_BLOCKED = "policy blocked"
#: A submit whose worker process died this many times before it ended fails the job.
MAX_DEAD_ATTEMPTS = 3
SUBMIT_ATTEMPTS_TTL_S = 24 * 3600.0
DIED_SUBMITTING = "the worker process died while submitting it, each time (out of memory?)"


class SubmitOutcome(StrEnum):
    """What one delivery of a job's submit did."""

    SUBMITTED = "submitted"
    ADOPTED = "adopted"  # the scheduler had it already (an earlier attempt died)
    ALREADY_SUBMITTED = "already submitted"
    BEING_SUBMITTED = "being submitted"  # another delivery holds the job's lock
    FINISHED = "finished"  # e.g. cancelled before a worker got to it
    CANCELLED = "cancelled"  # cancelled while being submitted: stopped on the scheduler
    POLICY_BLOCKED = POLICY_BLOCKED
    DEPENDENCY_FAILED = DEPENDENCY_FAILED
    DIED_SUBMITTING = "died submitting"  # its worker process died MAX_DEAD_ATTEMPTS times
    MISSING = "missing"  # no record (purged, or never written)
    MISROUTED = "misrouted"  # the job is on another cluster than its message said
    INPUTS_FAILED = "inputs failed"  # its bundle is missing, corrupt or unsafe


def submit_job(ctx: ClusterContext, job_id: str) -> SubmitOutcome:
    """Submit the job if nobody has; returns what happened. Transient BackendError propagates.

    The profile's defaults are applied and its policy enforced here, whatever the
    client did: a BLOCK finding fails the job with reason "policy blocked" before
    anything reaches the scheduler, unless the submitter allowed the risk and the
    profile allows overrides.
    """
    store, profile = ctx.store, ctx.profile
    with ctx.coordination.submit_lock(job_id, SUBMIT_LOCK_S, wait_s=SUBMIT_LOCK_WAIT_S) as taken:
        if not taken:
            return SubmitOutcome.BEING_SUBMITTED
        # Read under the lock: a delivery that held it before us may have submitted.
        try:
            record = store.get(job_id)
        except JobNotFoundError:
            log.error("submit of job %s: no such record (purged, or not written)", job_id)
            return SubmitOutcome.MISSING
        if record.cluster != ctx.name:
            return SubmitOutcome.MISROUTED
        if record.status.is_finished:
            return SubmitOutcome.FINISHED
        if record.backend_id:
            start_chain(ctx)
            return SubmitOutcome.ALREADY_SUBMITTED
        spec = apply_defaults(record.spec, profile)
        findings = evaluate_policy(spec, profile)
        blocked = blocking(findings)
        override = bool(blocked) and record.allow_policy_risk and profile.policy.allow_overrides
        if findings != record.findings or override != record.policy_override:
            store.record_policy(job_id, findings, override=override)
        if blocked and not override:
            fail(ctx, job_id, POLICY_BLOCKED)
            log.warning("job %s: %s (%s)", job_id, POLICY_BLOCKED,
                        ", ".join(f.code for f in blocked))  # fmt: skip
            return SubmitOutcome.POLICY_BLOCKED
        if override:
            log.warning("job %s: policy BLOCK findings overridden by its submitter: %s",
                        job_id, ", ".join(f.code for f in blocked))  # fmt: skip
        with ctx.coordination.submit_attempt(job_id, SUBMIT_ATTEMPTS_TTL_S) as died:
            if died >= MAX_DEAD_ATTEMPTS:
                # Celery requeues the task of a process that died: without this, a job
                # whose submit kills its worker process would do so forever.
                fail(ctx, job_id, f"{DIED_SUBMITTING}: {died} attempts")
                log.error("job %s: %s (%d attempts); failed it", job_id, DIED_SUBMITTING, died)
                return SubmitOutcome.DIED_SUBMITTING
            backend_id = ctx.backend.find(job_id)
            adopted = backend_id is not None
            if backend_id is None:
                try:
                    _stage_inputs(ctx, record)
                    backend_id = ctx.backend.submit(_submission(ctx, record, spec))
                except DependencyFailedError as e:
                    fail(ctx, job_id, DEPENDENCY_FAILED)
                    log.warning("job %s: %s", job_id, e)
                    return SubmitOutcome.DEPENDENCY_FAILED
                except InputsError as e:
                    if e.transient:
                        raise
                    fail(ctx, job_id, str(e))
                    log.warning("job %s: %s", job_id, e)
                    return SubmitOutcome.INPUTS_FAILED
        pending = Observation(JobStatus.PENDING, reason="found on the cluster" if adopted else None)
        now = store.now()  # one read of Redis's clock for the transition and the change mark
        (outcome,) = ctx.record(
            [StatusUpdate(job_id, pending, backend_id=backend_id, only_from=JobStatus.NEW)],
            observed_at=now,
        )
    if outcome.outcome is TransitionResult.FINISHED:
        # Cancelled while we were submitting: the job must not run.
        ctx.backend.cancel({job_id: backend_id})
        log.info("job %s was cancelled during submission; cancelled %s", job_id, backend_id)
        return SubmitOutcome.CANCELLED
    store.mark_change(ctx.name, now)
    start_chain(ctx)
    log.info("job %s submitted to %s as %s", job_id, ctx.name, backend_id)
    return SubmitOutcome.ADOPTED if adopted else SubmitOutcome.SUBMITTED


def _stage_inputs(ctx: ClusterContext, record: JobRecord) -> None:
    """Unpack the job's input bundle into its directory, for backends that run the job
    from one (Kubernetes stages inputs in the job's own pod)."""
    if not record.spec.inputs or not isinstance(ctx.backend, FileBackend):
        return
    if ctx.storage is None:
        raise InputsError(f"cluster {ctx.name} has no storage to take inputs from")
    unpack_inputs(ctx.storage, ctx.backend, record)


def _submission(ctx: ClusterContext, record: JobRecord, spec: JobSpec) -> JobSubmission:
    """The job as the backend submits it: dependencies resolved, secrets filled in."""
    dependencies = tuple(_dependency_ids(ctx, spec))
    # Only a job whose record holds redacted values has secrets stored to read.
    stored = ctx.store.job_secrets(record.id) if REDACTED in spec.env.values() else {}
    runnable = with_secrets(spec, stored, ctx.profile)
    return JobSubmission(record.id, runnable, record.owner, ctx.tenant, dependencies)


class DependencyFailedError(BackendError):
    """A job this one depends on failed or was cancelled: this one can never run."""


def _dependency_ids(ctx: ClusterContext, spec: JobSpec) -> list[str]:
    """Backend ids of the dependencies still to wait for (succeeded ones are dropped)."""
    waiting = []
    for dep_id in spec.depends_on:
        try:
            dep = ctx.store.get(dep_id)
        except JobNotFoundError as e:
            raise BackendError(f"dependency {dep_id} does not exist") from e
        if dep.cluster != ctx.name:
            raise BackendError(
                f"dependency {dep_id} runs on cluster {dep.cluster}; dependencies must be on "
                f"cluster {ctx.name} too"
            )
        if dep.status is JobStatus.SUCCEEDED:
            continue
        if dep.status.is_finished:
            raise DependencyFailedError(f"dependency {dep_id} ended {dep.status.value}")
        if not dep.backend_id:
            raise BackendError(f"dependency {dep_id} is not submitted yet", transient=True)
        waiting.append(dep.backend_id)
    return waiting


def fail_submission(ctx: ClusterContext, job_id: str, error: BackendError) -> None:
    """Record a submit that cannot succeed as FAILED, with the scheduler's reason."""
    reason = str(error) if isinstance(error, InputsError) else f"submit failed: {error}"
    fail(ctx, job_id, SCRUBBER.scrub(reason))


def fail(ctx: ClusterContext, job_id: str, reason: str) -> None:
    """Record the job FAILED for `reason` (and finalize it), unless it finished already."""
    ctx.settle(StatusUpdate(job_id, Observation(JobStatus.FAILED, reason=reason)))
