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
from jobgate.client.models import JobSpec, JobStatus
from jobgate.client.policy import blocking, evaluate_policy
from jobgate.client.profile_schema import ClusterProfile
from jobgate.client.profiles import apply_defaults
from jobgate.client.store import JobStore, Observation, StatusUpdate
from jobgate.workers.backends import Backend
from jobgate.workers.backends.programs import OWNER_ENV
from jobgate.workers.finalize import finalize
from jobgate.workers.locks import held
from jobgate.workers.polling import start_chain
from jobgate.workers.secret_handling import SCRUBBER, with_secrets

log = logging.getLogger(__name__)

SUBMIT_LOCK_S = 300
POLICY_BLOCKED = "policy blocked"
DEPENDENCY_FAILED = "dependency failed"


def submit_job(
    store: JobStore, app: Celery, backend: Backend, profile: ClusterProfile, job_id: str
) -> str:
    """Submit the job if nobody has; returns what happened. Transient BackendError propagates.

    The profile's defaults are applied and its policy enforced here, whatever the
    client did: a BLOCK finding fails the job with reason "policy blocked" before
    anything reaches the scheduler, unless the submitter allowed the risk and the
    profile allows overrides.
    """
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
        spec = apply_defaults(record.spec, profile)
        findings = evaluate_policy(spec, profile)
        blocked = blocking(findings)
        override = bool(blocked) and record.allow_policy_risk and profile.policy.allow_overrides
        store.record_policy(job_id, findings, override=override)
        if blocked and not override:
            _fail(store, app, profile, job_id, POLICY_BLOCKED)
            log.warning("job %s: %s (%s)", job_id, POLICY_BLOCKED,
                        ", ".join(f.code for f in blocked))  # fmt: skip
            return "policy blocked"
        if override:
            log.warning("job %s: policy BLOCK findings overridden by its submitter: %s",
                        job_id, ", ".join(f.code for f in blocked))  # fmt: skip
        backend_id = backend.find(job_id)
        adopted = backend_id is not None
        if backend_id is None:
            try:
                dependencies = _dependency_ids(store, profile.name, spec)
            except DependencyFailedError as e:
                _fail(store, app, profile, job_id, DEPENDENCY_FAILED)
                log.warning("job %s: %s", job_id, e)
                return DEPENDENCY_FAILED
            runnable = with_secrets(spec, store.job_secrets(job_id))
            # the job knows who submitted it (and Kubernetes labels the Job with it)
            runnable = runnable.model_copy(
                update={"env": {**runnable.env, OWNER_ENV: record.owner}}
            )
            backend_id = backend.submit(job_id, runnable, dependencies)
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
        backend.cancel({job_id: backend_id})
        log.info("job %s was cancelled during submission; cancelled %s", job_id, backend_id)
        return "cancelled"
    store.mark_change(profile.name, time.time())
    start_chain(store, app, profile)
    log.info("job %s submitted to %s as %s", job_id, profile.name, backend_id)
    return "adopted" if adopted else "submitted"


class DependencyFailedError(BackendError):
    """A job this one depends on failed or was cancelled: this one can never run."""


def _dependency_ids(store: JobStore, cluster: str, spec: JobSpec) -> list[str]:
    """Backend ids of the dependencies still to wait for (succeeded ones are dropped)."""
    waiting = []
    for dep_id in spec.depends_on:
        try:
            dep = store.get(dep_id)
        except JobNotFoundError as e:
            raise BackendError(f"dependency {dep_id} does not exist") from e
        if dep.cluster != cluster:
            raise BackendError(
                f"dependency {dep_id} runs on cluster {dep.cluster}; dependencies must be on "
                f"cluster {cluster} too"
            )
        if dep.status is JobStatus.SUCCEEDED:
            continue
        if dep.status.is_finished:
            raise DependencyFailedError(f"dependency {dep_id} ended {dep.status.value}")
        if not dep.backend_id:
            raise BackendError(f"dependency {dep_id} is not submitted yet", transient=True)
        waiting.append(dep.backend_id)
    return waiting


def fail_submission(
    store: JobStore, app: Celery, profile: ClusterProfile, job_id: str, error: BackendError
) -> None:
    """Record a submit that cannot succeed as FAILED, with the scheduler's reason."""
    _fail(store, app, profile, job_id, f"submit failed: {SCRUBBER.scrub(str(error))}")


def _fail(store: JobStore, app: Celery, profile: ClusterProfile, job_id: str, reason: str) -> None:
    outcome = store.transition(
        StatusUpdate(job_id, Observation(JobStatus.FAILED, reason=reason)),
        observed_at=time.time(),
        retention_s=profile.retention_s,
    )
    if outcome.applied:
        finalize(store, app, job_id, profile)
