"""What the backend contract suite (tests/contract) needs to know about one backend.

The contract's tests are the scenarios every backend must pass; a harness holds what
differs between local, Slurm, LSF and Kubernetes: how to write a profile with fast
polling, the worker's environment, the backend's own reason texts, how to make a job
vanish from the scheduler, how to see on the scheduler that a job was stopped, and how
to count the scheduler's status calls. One subclass per backend, beside its stand-in
(tests/support/local.py, slurm.py, lsf.py, kubernetes.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from jobgate.client import Gateway, Job, JobSpec, JobStatus
from scripts import devstack
from tests.support.profiles import INTERVAL_S
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import WorkerFactory

#: A job's output stream, as `Job.logs` names it.
Stream = Literal["stdout", "stderr"]


class OnScheduler(ABC):
    """A job as its scheduler sees it, caught while the job runs."""

    @abstractmethod
    def running(self) -> bool:
        """Whether the scheduler runs it now."""

    @abstractmethod
    def assert_stopped(self) -> None:
        """Fail unless the scheduler stopped it (waiting, where the scheduler takes time)."""


@dataclass(frozen=True)
class Vanished:
    """Jobs the scheduler no longer knows: `lost` left nothing behind; `exit_recorded`
    (where the backend keeps exit records) left a record saying it exited 0."""

    lost: Job
    exit_recorded: Job | None = None


class BackendHarness(ABC):
    """One backend, for the contract suite: a gateway, a worker factory, and the
    backend's differences as named attributes and methods."""

    #: The cluster (profile) name jobs are submitted to.
    cluster: ClassVar[str]
    #: The poll interval of the profile: status calls are counted against it.
    interval_s: ClassVar[float] = INTERVAL_S
    #: How long to wait for a job to finish.
    timeout_s: ClassVar[float] = TIMEOUT_S
    #: The reason of a job that exits with code 3.
    exit_3_reason: ClassVar[str] = "exit code 3"
    #: The reason of a job that vanished from the scheduler.
    lost_reason: ClassVar[str]
    #: What the gateway recorded last before it declared a vanished job lost.
    status_before_lost: ClassVar[JobStatus]
    #: The first index of an array (LSF counts from 1); None: arrays are not supported.
    array_first_index: ClassVar[int | None]
    #: Whether the backend runs jobs that depend on others (depends_on).
    supports_dependencies: ClassVar[bool] = False
    #: Whether stdout and stderr are kept apart (Kubernetes keeps one log for both).
    streams_apart: ClassVar[bool] = True
    #: Of the hundred jobs, every n-th one's output is read back (all, where that is cheap).
    crowd_logs_every: ClassVar[int] = 1
    #: Profile settings for the hundred jobs, on top of `profile()`'s.
    crowd_settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, gateway: Gateway, start_worker: WorkerFactory, tmp_path: Path) -> None:
        self.gateway = gateway
        self.start_worker = start_worker
        self.tmp_path = tmp_path

    @abstractmethod
    def profile(self, **settings: Any) -> Path:
        """Write the backend's profile (fast, fixed polling; `settings` on top) to a file."""

    def worker_env(self) -> dict[str, str]:
        """What the worker's environment adds, to reach the scheduler (and count its calls)."""
        return {}

    def start(self, *, concurrency: int = 2, **settings: Any) -> devstack.Worker:
        """Start a worker serving the backend's profile."""
        return self.start_worker(
            self.profile(**settings), env=self.worker_env(), concurrency=concurrency
        )

    def submit(self, spec: JobSpec) -> Job:
        return self.gateway.submit(spec, self.cluster)

    def submit_named(self, name: str, command: str, **fields: Any) -> Job:
        return self.submit(JobSpec(name=name, command=command, **fields))

    def expected_logs(self, stdout: str, stderr: str) -> dict[Stream, str]:
        """What each readable stream holds after a job wrote `stdout` then `stderr`."""
        if self.streams_apart:
            return {"stdout": stdout, "stderr": stderr}
        return {"stdout": stdout + stderr}

    @abstractmethod
    def on_scheduler(self, job: Job) -> OnScheduler:
        """The job on the scheduler, while it runs."""

    @abstractmethod
    def vanished(self) -> Vanished:
        """Start a worker and make jobs vanish from the scheduler behind jobgate's back."""

    @abstractmethod
    def status_calls(self) -> int:
        """Status calls the scheduler has answered so far, counted at the scheduler."""
