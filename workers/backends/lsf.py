"""The LSF backend: bsub, bjobs, bhist and bkill on the worker's host.

Pure functions build scripts and read output (lsf_script, lsf_status); this
module runs the commands, with timeouts and bounded retries for LSF's transient
"please wait" answers. Status is batched: one ``bjobs -a -json`` per chunk of ids
for all active jobs. Jobs bjobs no longer lists (after CLEAN_PERIOD) are judged
from the exit records their wrappers wrote, then from one ``bhist`` call; a job
found nowhere is UNKNOWN, never assumed to have succeeded, and the gateway
declares it lost after the profile's grace period.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from jobgate.client.errors import BackendError
from jobgate.client.ids import JOB_ID_PATTERN
from jobgate.client.models import ElementState, JobSpec, JobStatus
from jobgate.client.profile_schema import ClusterProfile, LsfSettings
from jobgate.client.store import Observation
from jobgate.workers.backends import commands
from jobgate.workers.backends.base import array_observation, task_observation
from jobgate.workers.backends.jobfiles import (
    FileBackend,
    exit_state,
    read_indices,
    write_indices,
)
from jobgate.workers.backends.lsf_script import (
    LsfFiles,
    bsub_argv,
    bsub_directives,
    parse_bsub,
    render_job_script,
)
from jobgate.workers.backends.lsf_status import (
    BjobsAnswer,
    LsfRow,
    base_name,
    bhist_argv,
    bjobs_argv,
    discover_argv,
    observe,
    parse_bhist,
    parse_bjobs,
)
from jobgate.workers.backends.programs import job_environment, job_name, render_program

#: What LSF commands print while mbatchd is busy, restarting or unreachable.
TRANSIENT = (
    "LSF is processing your request",
    "batch system daemon not responding",
    "LSF is down",
    "Failed in an LSF library call",
    "Cannot connect to LSF",
    "Resource temporarily unavailable",
)


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class LsfBackend(FileBackend):
    kind = "lsf"

    def __init__(self, profile: ClusterProfile) -> None:
        super().__init__(profile)
        assert profile.lsf is not None
        self.settings: LsfSettings = profile.lsf
        self.work_dir = Path(self.settings.work_dir).expanduser()
        self.policy = commands.RetryPolicy(
            timeout_s=self.settings.command_timeout_s,
            attempts=self.settings.command_attempts,
            transient=TRANSIENT,
        )

    def job_directory(self, job_id: str) -> Path:
        return self.files(job_id).directory

    def files(self, job_id: str) -> LsfFiles:
        if not JOB_ID_PATTERN.match(job_id):
            raise BackendError(f"{job_id!r} is not a jobgate job id")
        return LsfFiles(self.work_dir / job_id, job_id)

    # -- submit ------------------------------------------------------------------

    def submit(self, job_id: str, spec: JobSpec, dependencies: Sequence[str] = ()) -> str:
        files = self.files(job_id)
        try:
            files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            files.program.write_text(render_program(spec, self.profile), encoding="utf-8")
            files.program.chmod(0o700)
            if spec.array:
                write_indices(files.directory, job_id, spec.array.indices)
            directives = bsub_directives(job_id, spec, self.profile, files, list(dependencies))
            script = render_job_script(directives, files, spec.array is not None)
            files.script.write_text(script, encoding="utf-8")
        except OSError as e:
            raise BackendError(f"cannot prepare job directory {files.directory}: {e}") from e
        # No retries inside: a bsub whose answer was lost may have submitted. The submit
        # task retries instead, and looks for the job's name first.
        once = commands.RetryPolicy(timeout_s=self.settings.command_timeout_s, attempts=1,
                                    transient=TRANSIENT)  # fmt: skip
        result = commands.run(
            bsub_argv(self.profile, spec),
            once,
            input_text=script,
            env=job_environment(job_id, spec, self.profile),
            cwd=str(files.directory),
        )
        if result.returncode != 0:
            raise result.error("refused the job", transient=once.is_transient(result))
        backend_id = parse_bsub(result.stdout)
        files.save_backend_id(backend_id)
        return backend_id

    def discover(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Jobs submitted before: by the id file bsub's answer left, else by name among the
        jobs bjobs lists under the profile's prefix (one call for all of them).

        A job whose directory does not exist was never prepared, so never submitted.
        """
        found: dict[str, str] = {}
        names: dict[str, str] = {}
        for job_id in job_ids:
            files = self.files(job_id)
            saved = files.saved_backend_id()
            if saved is not None:
                found[job_id] = saved
            elif files.directory.exists():
                names[job_name(self.profile, job_id)] = job_id
        if names:
            for row in self._bjobs(discover_argv(self.profile.job_name_prefix)).rows:
                if base_name(row.name) in names:
                    found[names[base_name(row.name)]] = row.job_id
        return found

    # -- status --------------------------------------------------------------------

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        listed: dict[str, list[LsfRow]] = {}
        for chunk in _chunks(sorted(set(jobs.values())), self.settings.query_chunk):
            for row in self._bjobs(bjobs_argv(chunk)).rows:
                listed.setdefault(row.job_id, []).append(row)
        result = {}
        unexplained: dict[str, str] = {}
        for job_id, backend_id in jobs.items():
            if backend_id in listed:
                result[job_id] = self._observe_listed(job_id, listed[backend_id])
            else:
                seen = self._observe_from_files(job_id)
                if seen.status is JobStatus.UNKNOWN or any(
                    e.status is JobStatus.UNKNOWN for e in seen.elements
                ):
                    unexplained[job_id] = backend_id
                result[job_id] = seen
        if unexplained and self.settings.bhist:
            history = self._history(sorted(set(unexplained.values())))
            for job_id, backend_id in unexplained.items():
                if backend_id in history:
                    result[job_id] = self._observe_history(job_id, history[backend_id])
        return result

    def _bjobs(self, argv: list[str]) -> BjobsAnswer:
        result = commands.run(argv, self.policy)
        return parse_bjobs(result.stdout, result.stderr, result.returncode)

    def _history(self, backend_ids: list[str]) -> dict[str, list[LsfRow]]:
        """What bhist says of finished jobs, by backend id."""
        found: dict[str, list[LsfRow]] = {}
        for chunk in _chunks(backend_ids, self.settings.query_chunk):
            result = commands.run(bhist_argv(chunk), self.policy)
            for row in parse_bhist(result.stdout, result.stderr, result.returncode):
                found.setdefault(row.job_id, []).append(row)
        return found

    def _observe_listed(self, job_id: str, rows: list[LsfRow]) -> Observation:
        indices = read_indices(self.files(job_id).directory, job_id)
        if indices is None:
            return observe(rows)
        # An array keeps its elements in bjobs together; any missing one is read from files.
        seen = {r.index for r in rows}
        listed = observe(rows)
        rest = [self._element_from_files(job_id, i) for i in indices if i not in seen]
        if not rest:
            return listed
        elements = sorted([*listed.elements, *rest], key=lambda e: e.index)
        return array_observation(elements, stop_on_scheduler=listed.stop_on_scheduler)

    def _observe_from_files(self, job_id: str) -> Observation:
        """A job bjobs no longer lists, from its exit records alone."""
        directory = self.files(job_id).directory
        indices = read_indices(directory, job_id)
        if indices is None:
            return task_observation(exit_state(directory, job_id, None) or self._unknown(0))
        return array_observation([self._element_from_files(job_id, i) for i in indices])

    def _observe_history(self, job_id: str, rows: list[LsfRow]) -> Observation:
        """Exit records first (they hold exact times and codes), bhist for the rest."""
        directory = self.files(job_id).directory
        indices = read_indices(directory, job_id)
        if indices is None:
            recorded = exit_state(directory, job_id, None)
            return task_observation(recorded) if recorded else observe(rows)
        by_index = {r.index: r for r in rows}
        elements = []
        for index in indices:
            state = exit_state(directory, job_id, index)
            if state is None and index in by_index:
                state = observe([by_index[index]]).elements[0]
            elements.append(state or self._unknown(index))
        return array_observation(elements)

    def _element_from_files(self, job_id: str, index: int) -> ElementState:
        return exit_state(self.files(job_id).directory, job_id, index) or self._unknown(index)

    @staticmethod
    def _unknown(index: int) -> ElementState:
        return ElementState(index=index, status=JobStatus.UNKNOWN,
                            reason="not in bjobs or bhist, and no exit record")  # fmt: skip

    # -- cancel ----------------------------------------------------------------------

    def cancel(self, jobs: Mapping[str, str]) -> None:
        for chunk in _chunks(sorted(set(jobs.values())), self.settings.query_chunk):
            result = commands.run(["bkill", *chunk], self.policy)
            if result.returncode != 0 and not _nothing_left(result.stdout, result.stderr):
                raise result.error("could not cancel")


def _nothing_left(stdout: str, stderr: str) -> bool:
    """bkill exits non-zero when a job has finished or is gone: nothing is left to stop."""
    fine = ("is being terminated", "has already finished", "is not found", "No matching job")
    lines = [line for line in f"{stdout}\n{stderr}".splitlines() if line.strip()]
    return all(any(f in line for f in fine) for line in lines)
