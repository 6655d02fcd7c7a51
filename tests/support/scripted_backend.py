"""A backend whose scheduler is the test: it shows what the test says each job looks like
and records every call, so the core's rules can be tested without a scheduler."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jobgate.client.errors import JobgateError
from jobgate.client.models import JobStatus, Observation
from jobgate.client.profile_schema import ClusterProfile
from jobgate.workers.backends.base import Backend, JobSubmission, LogChunk, LogRange


class ScriptedBackend(Backend[ClusterProfile]):
    """Backend ids are ``b-<job id>``; a submitted job shows PENDING until `show` says
    otherwise; a cancelled one shows CANCELLED."""

    kind = "scripted"

    def __init__(self, profile: ClusterProfile) -> None:
        super().__init__(profile)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.submissions: list[JobSubmission] = []
        #: jobgate id -> backend id of every job the scheduler has.
        self.submitted: dict[str, str] = {}
        self.seen: dict[str, Observation] = {}
        #: Raised by every query while set (a scheduler that does not answer).
        self.fail_queries: JobgateError | None = None
        #: Run inside `submit`, after the scheduler took the job (a race to play).
        self.on_submit: Callable[[], object] | None = None

    def show(self, backend_id: str | None, seen: Observation) -> None:
        """What the scheduler says of this job from now on."""
        assert backend_id is not None
        self.seen[backend_id] = seen

    def calls_of(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]

    def submit(self, job: JobSubmission) -> str:
        self.calls.append(("submit", (job.job_id,)))
        self.submissions.append(job)
        backend_id = self.submitted[job.job_id] = f"b-{job.job_id}"
        self.seen.setdefault(backend_id, Observation(JobStatus.PENDING))
        if self.on_submit is not None:
            self.on_submit()
        return backend_id

    def discover(self, job_ids: Sequence[str]) -> dict[str, str]:
        self.calls.append(("discover", tuple(job_ids)))
        return {j: self.submitted[j] for j in job_ids if j in self.submitted}

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        self.calls.append(("query", (tuple(sorted(jobs)),)))
        if self.fail_queries is not None:
            raise self.fail_queries
        return {j: self.seen[b] for j, b in jobs.items() if b in self.seen}

    def cancel(self, jobs: Mapping[str, str]) -> None:
        self.calls.append(("cancel", tuple(sorted(jobs.items()))))
        for backend_id in jobs.values():
            self.seen[backend_id] = Observation(JobStatus.CANCELLED, reason="cancelled")

    def logs(self, job_id: str, backend_id: str, wanted: LogRange) -> LogChunk:
        return LogChunk(b"", wanted.offset)
