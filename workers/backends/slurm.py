"""The Slurm backend: sbatch, squeue, sacct and scancel on the worker's host.

Pure functions build scripts and read output (slurm_script, slurm_status); this
module runs the commands, with timeouts and bounded retries. Status is batched:
one squeue per chunk of ids (chunks at bounded concurrency) for all active jobs,
then one sacct for the jobs that left the queue, then the exit records the job
wrappers wrote. A job found nowhere is UNKNOWN, never assumed to have succeeded;
the gateway declares it lost after the profile's grace period.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from jobgate.client.errors import BackendError
from jobgate.client.ids import JOB_ID_PATTERN, created_at
from jobgate.client.models import ElementState, JobSpec, JobStatus
from jobgate.client.profile_schema import ClusterProfile, SlurmSettings
from jobgate.client.store import Observation
from jobgate.workers.backends import commands
from jobgate.workers.backends.base import (
    array_observation,
    task_observation,
)
from jobgate.workers.backends.jobfiles import (
    FileBackend,
    exit_state,
    read_indices,
    write_indices,
)
from jobgate.workers.backends.programs import job_environment, job_name, render_program
from jobgate.workers.backends.slurm_script import (
    SlurmFiles,
    parse_sbatch_parsable,
    render_batch_script,
    sbatch_argv,
    sbatch_directives,
)
from jobgate.workers.backends.slurm_status import (
    SQUEUE_FORMAT,
    SlurmRow,
    observe,
    parse_sacct,
    parse_squeue,
    sacct_argv,
    squeue_argv,
)

#: What Slurm commands print when the controller is busy or unreachable.
TRANSIENT = (
    "Socket timed out",
    "Unable to contact slurm controller",
    "Zero Bytes were transmitted or received",
    "Connection refused",
    "Resource temporarily unavailable",
    "Slurm temporarily unable to accept job",
)


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class SlurmBackend(FileBackend):
    kind = "slurm"

    def __init__(self, profile: ClusterProfile) -> None:
        super().__init__(profile)
        assert profile.slurm is not None
        self.settings: SlurmSettings = profile.slurm
        self.work_dir = Path(self.settings.work_dir).expanduser()
        self.policy = commands.RetryPolicy(
            timeout_s=self.settings.command_timeout_s,
            attempts=self.settings.command_attempts,
            transient=TRANSIENT,
        )

    def job_directory(self, job_id: str) -> Path:
        return self.files(job_id).directory

    def files(self, job_id: str) -> SlurmFiles:
        if not JOB_ID_PATTERN.match(job_id):
            raise BackendError(f"{job_id!r} is not a jobgate job id")
        return SlurmFiles(self.work_dir / job_id, job_id)

    # -- submit ------------------------------------------------------------------

    def submit(self, job_id: str, spec: JobSpec, dependencies: Sequence[str] = ()) -> str:
        files = self.files(job_id)
        try:
            files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            files.program.write_text(render_program(spec, self.profile), encoding="utf-8")
            files.program.chmod(0o700)
            if spec.array:
                write_indices(files.directory, job_id, spec.array.indices)
            directives = sbatch_directives(job_id, spec, self.profile, files, list(dependencies))
            script = render_batch_script(directives, files, spec.array is not None)
            files.script.write_text(script, encoding="utf-8")
        except OSError as e:
            raise BackendError(f"cannot prepare job directory {files.directory}: {e}") from e
        # No retries inside: an sbatch whose answer was lost may have submitted. The submit
        # task retries instead, and asks squeue for the job's name first.
        once = commands.RetryPolicy(timeout_s=self.settings.command_timeout_s, attempts=1,
                                    transient=TRANSIENT)  # fmt: skip
        result = commands.run(
            sbatch_argv(self.profile, spec, files.script),
            once,
            env=job_environment(job_id, spec, self.profile),
            cwd=str(files.directory),
        )
        if result.returncode != 0:
            raise result.error("refused the job", transient=once.is_transient(result))
        backend_id = parse_sbatch_parsable(result.stdout)
        files.save_backend_id(backend_id)
        return backend_id

    def discover(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Jobs submitted before: by the id file sbatch's answer left, else by name in squeue.

        A job whose directory does not exist was never prepared, so never submitted:
        squeue is asked only about the others (an attempt that died around sbatch).
        """
        found: dict[str, str] = {}
        prepared = []
        for job_id in job_ids:
            files = self.files(job_id)
            saved = files.saved_backend_id()
            if saved is not None:
                found[job_id] = saved
            elif files.directory.exists():
                prepared.append(job_id)
        names = {job_name(self.profile, j): j for j in prepared}
        for chunk in _chunks(sorted(names), self.settings.query_chunk):
            argv = [
                "squeue",
                "-h",
                "-t",
                "all",
                "-r",
                "--name",
                ",".join(chunk),
                "-O",
                SQUEUE_FORMAT,
            ]
            for row in self._rows(argv, parse_squeue):
                if row.name in names:
                    found[names[row.name]] = row.array_job_id
        return found

    # -- status --------------------------------------------------------------------

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        ids = sorted(set(jobs.values()))
        with ThreadPoolExecutor(max_workers=self.settings.query_concurrency) as pool:
            batches = pool.map(
                lambda chunk: self._rows(squeue_argv(chunk), parse_squeue),
                _chunks(ids, self.settings.query_chunk),
            )
            queued: dict[str, list[SlurmRow]] = {}
            for rows in batches:
                for row in rows:
                    queued.setdefault(row.array_job_id, []).append(row)
        gone = {j: b for j, b in jobs.items() if b not in queued}
        history = self._history(gone) if gone else {}
        result = {}
        for job_id, backend_id in jobs.items():
            if backend_id in queued:
                result[job_id] = self._observe_queued(job_id, queued[backend_id])
            else:
                result[job_id] = self._observe_gone(job_id, history.get(backend_id, []))
        return result

    def _rows(self, argv: list[str], parse: Callable[[str], list[SlurmRow]]) -> list[SlurmRow]:
        result = commands.run(argv, self.policy)
        if result.returncode != 0:
            if "Invalid job id specified" in result.stderr:
                return []  # squeue -j with one id that Slurm has purged already
            raise result.error("failed")
        return parse(result.stdout)

    def _history(self, jobs: Mapping[str, str]) -> dict[str, list[SlurmRow]]:
        """sacct rows of jobs that left squeue, by backend id (none without accounting)."""
        if self.settings.accounting == "none":
            return {}
        since = min(created_at(j) for j in jobs) - timedelta(days=1)
        found: dict[str, list[SlurmRow]] = {}
        for chunk in _chunks(sorted(set(jobs.values())), self.settings.query_chunk):
            for row in self._rows(sacct_argv(chunk, self.settings.accounting, since), parse_sacct):
                found.setdefault(row.array_job_id, []).append(row)
        return found

    def _observe_queued(self, job_id: str, rows: list[SlurmRow]) -> Observation:
        indices = read_indices(self.files(job_id).directory, job_id)
        if indices is None:
            return observe(rows, requeue_preempted=self.settings.requeue_preempted)
        # Elements that finished long ago may be gone from squeue: their exit records tell.
        seen = {r.index for r in rows}
        rest = [self._element_from_files(job_id, i) for i in indices if i not in seen]
        queued = observe(rows, requeue_preempted=self.settings.requeue_preempted)
        if not rest:
            return queued
        elements = sorted([*queued.elements, *rest], key=lambda e: e.index)
        return array_observation(elements, stop_on_scheduler=queued.stop_on_scheduler)

    def _observe_gone(self, job_id: str, history: list[SlurmRow]) -> Observation:
        """A job squeue no longer lists: from sacct, else from its exit records, else unknown."""
        directory = self.files(job_id).directory
        indices = read_indices(directory, job_id)
        if indices is None:
            if history:
                return observe(history[:1], requeue_preempted=self.settings.requeue_preempted)
            return task_observation(exit_state(directory, job_id, None) or self._unknown(0))
        return array_observation([self._element_from_files(job_id, i) for i in indices])

    def _element_from_files(self, job_id: str, index: int) -> ElementState:
        directory = self.files(job_id).directory
        return exit_state(directory, job_id, index) or self._unknown(index)

    @staticmethod
    def _unknown(index: int) -> ElementState:
        return ElementState(index=index, status=JobStatus.UNKNOWN,
                            reason="not in squeue or sacct, and no exit record")  # fmt: skip

    # -- cancel and logs --------------------------------------------------------------

    def cancel(self, jobs: Mapping[str, str]) -> None:
        for chunk in _chunks(sorted(set(jobs.values())), self.settings.query_chunk):
            result = commands.run(["scancel", *chunk], self.policy)
            if result.returncode != 0:
                raise result.error("could not cancel")
