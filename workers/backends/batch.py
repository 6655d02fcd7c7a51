"""What the Slurm and LSF backends share: a directory per job on a file system the
compute nodes see, scheduler commands run with a timeout and bounded retries, and a
submit that writes the program and the batch script, runs the submit command once
and keeps the scheduler's id beside them.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from jobgate.client.errors import BackendError
from jobgate.client.ids import JOB_ID_PATTERN
from jobgate.client.models import ElementState, JobSpec, JobStatus, Observation
from jobgate.client.profile_schema import HostProfile, SchedulerCommandSettings
from jobgate.workers.backends import commands
from jobgate.workers.backends.base import (
    JobSubmission,
    array_observation,
    chunks,
    task_observation,
)
from jobgate.workers.backends.jobfiles import (
    FileBackend,
    JobFiles,
    exit_state,
    read_indices,
    write_indices,
)
from jobgate.workers.backends.programs import job_environment, render_program

FilesT = TypeVar("FilesT", bound=JobFiles)
HostProfileT = TypeVar("HostProfileT", bound=HostProfile)

log = logging.getLogger(__name__)


class BatchBackend(FileBackend[HostProfileT], Generic[HostProfileT, FilesT]):
    """A scheduler driven through its command-line tools from the worker's host."""

    #: What the scheduler's commands print when it is busy or unreachable.
    transient: ClassVar[tuple[str, ...]]
    #: The reason of a task found neither on the scheduler nor in an exit record.
    unknown_reason: ClassVar[str]
    #: The command that cancels jobs given their backend ids (scancel, bkill).
    cancel_command: ClassVar[str]

    def __init__(
        self,
        profile: HostProfileT,
        settings: SchedulerCommandSettings,
        work_dir: str,
        files_type: type[FilesT],
    ) -> None:
        super().__init__(profile)
        self.command_settings = settings
        self.work_dir = Path(work_dir).expanduser()
        self.files_type = files_type
        self.policy = commands.RetryPolicy(
            timeout_s=settings.command_timeout_s,
            attempts=settings.command_attempts,
            transient=self.transient,
        )

    def job_directory(self, job_id: str) -> Path:
        return self.files(job_id).directory

    def files(self, job_id: str) -> FilesT:
        if not JOB_ID_PATTERN.match(job_id):
            raise BackendError(f"{job_id!r} is not a jobgate job id")
        return self.files_type(self.work_dir / job_id, job_id)

    # -- submit ------------------------------------------------------------------

    @abstractmethod
    def render_script(self, job: JobSubmission, files: FilesT) -> str:
        """The batch script: the scheduler's directives, then the job wrapper."""

    @abstractmethod
    def submit_command(
        self, spec: JobSpec, files: FilesT, script_text: str
    ) -> tuple[list[str], str | None]:
        """The submit command's argv, and what it reads on stdin (None: nothing)."""

    @abstractmethod
    def parse_submitted(self, stdout: str) -> str:
        """The scheduler's job id from the submit command's answer."""

    def submit(self, job: JobSubmission) -> str:
        spec, files = job.spec, self.files(job.job_id)
        try:
            files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            files.program.write_text(render_program(spec, self.profile), encoding="utf-8")
            files.program.chmod(0o700)
            if spec.array:
                write_indices(files.directory, job.job_id, spec.array.indices)
            script = self.render_script(job, files)
            files.script.write_text(script, encoding="utf-8")
        except OSError as e:
            raise BackendError(f"cannot prepare job directory {files.directory}: {e}") from e
        backend_id = self.submit_prepared(job, files, script)
        try:
            files.save_backend_id(backend_id)
        except OSError as e:
            # The scheduler has the job, and the caller records its id. The id file only
            # spares a redelivered submit the search by name, which still finds the job.
            log.warning(
                "job %s was submitted as %s, but could not keep the scheduler's id in %s: %s",
                job.job_id,
                backend_id,
                files.backend_id,
                e,
            )
        return backend_id

    def submit_prepared(self, job: JobSubmission, files: FilesT, script: str) -> str:
        """Run the submit command for a job whose files are written; the scheduler's id."""
        # No retries inside: a submit command whose answer was lost may have submitted.
        # The submit task retries instead, and looks for the job's name first.
        once = commands.RetryPolicy(timeout_s=self.command_settings.command_timeout_s,
                                    attempts=1, transient=self.transient)  # fmt: skip
        argv, stdin = self.submit_command(job.spec, files, script)
        result = commands.run(
            argv,
            once,
            input_text=stdin,
            env=job_environment(job, self.profile),
            cwd=str(files.directory),
        )
        if result.returncode != 0:
            raise result.error("refused the job", transient=once.is_transient(result))
        return self.parse_submitted(result.stdout)

    def saved_or_prepared(self, job_ids: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """Jobs whose submit command answered (by the id file it left), and jobs whose
        directory exists without one (an attempt died around the submit command: only
        the scheduler can tell). A job without a directory was never submitted."""
        found: dict[str, str] = {}
        prepared = []
        for job_id in job_ids:
            files = self.files(job_id)
            saved = files.saved_backend_id()
            if saved is not None:
                found[job_id] = saved
            elif files.directory.exists():
                prepared.append(job_id)
        return found, prepared

    # -- cancel ----------------------------------------------------------------------

    def cancel(self, jobs: Mapping[str, str]) -> None:
        for chunk in chunks(sorted(set(jobs.values())), self.command_settings.query_chunk):
            result = commands.run([self.cancel_command, *chunk], self.policy)
            if result.returncode != 0 and not self.nothing_left(result):
                raise result.error("could not cancel")

    def nothing_left(self, result: commands.CommandResult) -> bool:
        """Whether a cancel command that exited non-zero left nothing to stop (the jobs
        had finished already, say)."""
        return False

    # -- tasks without a scheduler answer ----------------------------------------------

    def observe_from_files(self, job_id: str) -> Observation:
        """A job the scheduler no longer lists, from its exit records alone."""
        directory = self.files(job_id).directory
        indices = read_indices(directory, job_id)
        if indices is None:
            return task_observation(exit_state(directory, job_id, None) or self.unknown(0))
        return array_observation([self.element_from_files(job_id, i) for i in indices])

    def with_unlisted_elements(
        self, job_id: str, listed: Observation, seen: set[int | None]
    ) -> Observation:
        """An array as the scheduler lists it, plus the elements it no longer lists (they
        finished long ago) from their exit records. A single job is left as it is."""
        indices = read_indices(self.files(job_id).directory, job_id)
        rest = [self.element_from_files(job_id, i) for i in indices or [] if i not in seen]
        if not rest:
            return listed
        elements = sorted([*listed.elements, *rest], key=lambda e: e.index)
        return array_observation(elements, stop_on_scheduler=listed.stop_on_scheduler)

    def element_from_files(self, job_id: str, index: int) -> ElementState:
        return exit_state(self.files(job_id).directory, job_id, index) or self.unknown(index)

    def unknown(self, index: int) -> ElementState:
        return ElementState(index=index, status=JobStatus.UNKNOWN, reason=self.unknown_reason)
