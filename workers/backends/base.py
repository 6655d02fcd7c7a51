"""The interface every backend implements. A backend is given a `JobSubmission` (the job
as it runs, who submitted it, for which tenant) and reports what it sees of a job as an
`Observation`, the model the job store records."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Generic, Literal, TypeVar

from jobgate.client.models import ElementState, JobSpec, JobStatus, Observation, aggregate_elements
from jobgate.client.profile_schema import ProfileBase

Stream = Literal["stdout", "stderr"]
#: The reason of a job whose dependency failed: it can never run.
DEPENDENCY_FAILED = "dependency failed"
#: The reason of a job someone cancelled through jobgate.
CANCELLED_BY_USER = "cancelled by user"
ProfileT = TypeVar("ProfileT", bound=ProfileBase)


@dataclass(frozen=True)
class JobSubmission:
    """One job as a backend submits it."""

    job_id: str
    #: The spec as run: the profile's defaults applied, secret values filled in.
    spec: JobSpec
    #: Who submitted it (the record's owner); every job gets it as JOBGATE_OWNER.
    owner: str
    #: The tenant whose keys the job lives under (Kubernetes labels its Jobs with it).
    tenant: str
    #: Backend ids of jobs that must succeed before this one starts.
    dependencies: tuple[str, ...] = ()


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """`items` in lists of at most `size`: one scheduler command line or request each."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


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


def observe_tasks(states: list[ElementState], *, single: bool) -> Observation:
    """One job from the states of its tasks: the one task of a single job, or the elements
    of an array. A failed dependency ends the job (it can never run) and asks for it to
    be stopped on the scheduler, which would otherwise keep it waiting."""
    if single:
        (state,) = states
        return task_observation(state, stop_on_scheduler=state.reason == DEPENDENCY_FAILED)
    elements = sorted(states, key=lambda e: e.index)
    dependency = any(e.reason == DEPENDENCY_FAILED for e in elements)
    seen = array_observation(elements, stop_on_scheduler=dependency)
    if dependency and not seen.status.is_finished:
        return replace(seen, status=JobStatus.FAILED, reason=DEPENDENCY_FAILED)
    return seen


@dataclass(frozen=True)
class LogRange:
    """Which part of a job's output to read: up to `max_bytes` of `stream` from byte
    `offset`, of array element `index` (None: a single job, or an array's first element)."""

    stream: Stream
    offset: int
    max_bytes: int
    index: int | None = None


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a job's output from an offset; `offset` is where the next read starts."""

    data: bytes
    offset: int


class Backend(ABC, Generic[ProfileT]):
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

    def __init__(self, profile: ProfileT) -> None:
        self.profile = profile

    @abstractmethod
    def submit(self, job: JobSubmission) -> str:
        """Start the job once the jobs with backend ids `job.dependencies` have succeeded;
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
    def logs(self, job_id: str, backend_id: str, wanted: LogRange) -> LogChunk:
        """The part of the job's output that `wanted` asks for."""
