"""The interface every backend implements. What a backend reports of a job is an
`Observation`, the job store's own input type."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from jobgate.client.models import ElementState, JobSpec, aggregate_elements
from jobgate.client.profiles import ClusterProfile
from jobgate.client.store import Observation

Stream = Literal["stdout", "stderr"]


def task_observation(state: ElementState, *, stop_on_scheduler: bool = False) -> Observation:
    """A single job's observation from the state of its one task."""
    return Observation(state.status, state.reason, state.exit_code, state.started_at,
                       state.finished_at, stop_on_scheduler=stop_on_scheduler)  # fmt: skip


def array_observation(
    elements: list[ElementState], *, stop_on_scheduler: bool = False
) -> Observation:
    """An array job's observation: aggregate status, earliest start, last finish."""
    status, exit_code, reason = aggregate_elements(elements)
    started = [e.started_at for e in elements if e.started_at]
    finished = [e.finished_at for e in elements if e.finished_at]
    return Observation(
        status,
        reason,
        exit_code,
        min(started) if started else None,
        max(finished) if status.is_finished and finished else None,
        elements,
        stop_on_scheduler=stop_on_scheduler,
    )


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
    #: False when the cluster deletes a finished job's output by itself (Kubernetes' TTL):
    #: the gateway then keeps its tail when the job finishes.
    keeps_output: ClassVar[bool] = True

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
