"""Jobs as the core hands them to a backend, for the tests of the pure script functions."""

from __future__ import annotations

from jobgate.client.models import JobSpec
from jobgate.workers.backends.base import JobSubmission


def submission(job_id: str, spec: JobSpec, *dependencies: str) -> JobSubmission:
    """The job as the backend submits it, without an owner or a tenant."""
    return JobSubmission(job_id, spec, owner="", tenant="", dependencies=dependencies)
