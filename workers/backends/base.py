"""The interface every backend implements. What a backend reports of a job is an
`Observation`, the job store's own input type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
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

    Status is batched: `query` answers for many jobs with one scheduler call,
    so the gateway's load on the scheduler does not grow with the number of jobs.
    """

    kind: ClassVar[str]

    def __init__(self, profile: ClusterProfile) -> None:
        self.profile = profile

    @abstractmethod
    def submit(self, job_id: str, spec: JobSpec) -> str:
        """Start the job; return the backend's id for it."""

    @abstractmethod
    def find(self, job_id: str) -> str | None:
        """The backend id of the job named after `job_id`, if it was already submitted."""

    @abstractmethod
    def query(self, backend_ids: Sequence[str]) -> dict[str, Observation]:
        """The state of each job, in one batched call."""

    @abstractmethod
    def cancel(self, backend_id: str) -> None:
        """Stop the job and everything it started; return once it is gone."""

    @abstractmethod
    def logs(
        self, backend_id: str, stream: Stream, offset: int, max_bytes: int, index: int | None
    ) -> LogChunk:
        """Up to `max_bytes` of output from `offset` (of element `index` for arrays)."""

    @abstractmethod
    def discover(self) -> dict[str, str]:
        """Jobs the scheduler holds under jobgate names: jobgate id -> backend id."""
