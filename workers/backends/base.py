"""The interface every backend implements. What a backend reports of a job is an
`Observation`, the job store's own input type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from jobgate.client.models import JobSpec
from jobgate.client.profiles import ClusterProfile
from jobgate.client.store import Observation

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a job's output from an offset; `offset` is where the next read starts."""

    data: bytes
    offset: int


class Backend(ABC):
    """One scheduler behind one small interface.

    Jobs are named by both ids: the jobgate id (names, files) and the backend's id.
    Status is batched: `query` answers for many jobs with one scheduler call (or a
    few, for long id lists), so the gateway's load on the scheduler does not grow
    with the number of jobs.
    """

    kind: ClassVar[str]

    def __init__(self, profile: ClusterProfile) -> None:
        self.profile = profile

    @abstractmethod
    def submit(self, job_id: str, spec: JobSpec, dependencies: Sequence[str] = ()) -> str:
        """Start the job once the jobs with backend ids `dependencies` have succeeded;
        return the backend's id for it."""

    def find(self, job_id: str) -> str | None:
        """The backend id of the job named after `job_id`, if it was already submitted."""
        return self.discover([job_id]).get(job_id)

    @abstractmethod
    def discover(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Which of these jobgate ids the scheduler already knows: jobgate id -> backend id."""

    @abstractmethod
    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        """The state of each job (jobgate id -> backend id), keyed by jobgate id. A job
        the backend cannot tell about is left out."""

    @abstractmethod
    def cancel(self, jobs: Mapping[str, str]) -> None:
        """Stop these jobs and everything they started; return once they are gone."""

    @abstractmethod
    def logs(
        self,
        job_id: str,
        backend_id: str,
        stream: Stream,
        offset: int,
        max_bytes: int,
        index: int | None,
    ) -> LogChunk:
        """Up to `max_bytes` of output from `offset` (of element `index` for arrays)."""
