"""The local backend: each job is a detached runner on the worker's own host.

A job lives in ``<work_dir>/<job id>/``: its program, the runner and task
scripts, and per task ``<id>[.<index>].out/.err/.started/.exit``. The runner is
detached (its own session, reparented away from the worker), so a job outlives
the worker that started it; its exit record is written by the task script, so
the truth survives too, and any later worker reads it. A job is launched at most
once (``<id>.launched`` is written first); everything it starts is found and
ended with it (local_processes.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import psutil
from pydantic import BaseModel, ConfigDict

from jobgate.client.errors import BackendError
from jobgate.client.ids import JOB_ID_PATTERN
from jobgate.client.models import ElementState, JobSpec, JobStatus, Observation
from jobgate.client.profile_schema import LocalProfile
from jobgate.workers.backends.base import (
    CANCELLED_BY_USER,
    JobSubmission,
    array_observation,
    task_observation,
)
from jobgate.workers.backends.jobfiles import (
    FileBackend,
    UnreadableRecordError,
    epoch,
    exit_state,
    failed_if_unreadable,
    read_indices,
    read_record,
    task_base,
    write_indices,
)
from jobgate.workers.backends.local_processes import JobProcesses, end_jobs, make_cgroup
from jobgate.workers.backends.programs import job_environment, render_program

log = logging.getLogger(__name__)

SCRIPTS = Path(__file__).with_name("local_scripts")
START_TIMEOUT_S = 10.0
#: How often a submit waiting for the runner's record checks that the runner still runs.
RUNNER_CHECK_S = 0.2


class LocalBackend(FileBackend[LocalProfile]):
    kind = "local"
    own_files = frozenset({"runner.sh", "task.sh", "runner.err"})

    def __init__(self, profile: LocalProfile) -> None:
        super().__init__(profile)
        self.settings = profile.local
        self.work_dir = Path(self.settings.work_dir).expanduser()

    def job_directory(self, job_id: str) -> Path:
        if not JOB_ID_PATTERN.match(job_id):
            raise BackendError(f"local backend id {job_id!r} is not a jobgate job id")
        return self.work_dir / job_id

    # -- submit ------------------------------------------------------------------

    def discover(self, job_ids: Sequence[str]) -> dict[str, str]:
        """Jobs whose runner was started (a runner record exists): backend id = job id."""
        return {j: j for j in job_ids if (self.job_directory(j) / f"{j}.proc").exists()}

    def submit(self, job: JobSubmission) -> str:
        if job.dependencies:
            raise BackendError("the local backend does not support depends_on")
        job_id, spec = job.job_id, job.spec
        directory = self.job_directory(job_id)
        if (directory / f"{job_id}.proc").exists():
            return job_id
        if (directory / f"{job_id}.launched").exists():
            # An earlier attempt launched it: never launch it again, it may have run.
            self._wait_for_runner(job_id, directory)
            return job_id
        try:
            self._prepare(directory, job_id, spec)
            cgroup = make_cgroup(job_id) if self.settings.cgroups else None
            if cgroup is not None:
                (directory / f"{job_id}.cgroup").write_text(str(cgroup), encoding="utf-8")
            (directory / f"{job_id}.launched").touch()
        except OSError as e:
            raise BackendError(f"cannot prepare job directory {directory}: {e}") from e
        indices = [str(i) for i in spec.array.indices] if spec.array else []
        parallel = (spec.array.max_concurrent if spec.array else None) or (
            self.settings.max_parallel or os.cpu_count() or 1
        )
        cwd = spec.working_dir or str(directory)
        try:
            launcher = subprocess.Popen(
                [
                    "/bin/sh",
                    "-c",
                    '/bin/sh "$0" "$$" "$@" </dev/null >/dev/null 2>"$1/runner.err" &',
                    str(directory / "runner.sh"),
                    str(directory),
                    job_id,
                    str(parallel),
                    str(cgroup or ""),
                    *indices,
                ],
                cwd=cwd,
                env=job_environment(job, self.profile),
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            _discard(cgroup)
            raise BackendError(f"cannot start job {job_id} in {cwd}: {e}") from e
        _, errors = launcher.communicate(timeout=START_TIMEOUT_S)
        if launcher.returncode != 0:
            _discard(cgroup)
            message = errors.decode(errors="replace").strip()[-500:]
            raise BackendError(
                f"job {job_id}: /bin/sh could not launch its runner with the job's environment "
                f"(exit code {launcher.returncode}): {message}"
            )
        self._wait_for_runner(job_id, directory)
        return job_id

    def _prepare(self, directory: Path, job_id: str, spec: JobSpec) -> None:
        # A directory without a launch mark holds the job's inputs, and what an earlier
        # attempt wrote before it died (rewritten below); the caller holds the submit lock.
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        program = directory / f"{job_id}.program"
        program.write_text(render_program(spec, self.profile), encoding="utf-8")
        program.chmod(0o700)
        for script in ("runner.sh", "task.sh"):
            shutil.copyfile(SCRIPTS / script, directory / script)
        if spec.array:
            write_indices(directory, job_id, spec.array.indices)

    @staticmethod
    def _wait_for_runner(job_id: str, directory: Path) -> None:
        """Wait for the runner's record of its start; a runner that ended without one
        started nothing (it stops at its first error) and is not launched again."""
        record = directory / f"{job_id}.proc"
        deadline = time.monotonic() + START_TIMEOUT_S
        look_for_runner_at = time.monotonic() + RUNNER_CHECK_S
        while not record.exists():
            now = time.monotonic()
            if now >= look_for_runner_at:
                if not _runner_processes(directory) and not record.exists():
                    raise BackendError(
                        f"job {job_id}: its runner ended before it recorded its start "
                        f"({_runner_errors(directory)}); not started again, see {directory}"
                    )
                look_for_runner_at = now + RUNNER_CHECK_S
            if now > deadline:
                raise BackendError(
                    f"job {job_id}: its runner has not recorded its start within "
                    f"{START_TIMEOUT_S:g} s; it will be looked for again, not started twice",
                    transient=True,
                )
            time.sleep(0.005)

    # -- status ------------------------------------------------------------------

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        observations = {
            job_id: failed_if_unreadable(partial(self._observe, job_id)) for job_id in jobs
        }
        finished = [job_id for job_id, seen in observations.items() if seen.status.is_finished]
        if finished:
            self._end_leftovers(finished)
        return observations

    def _observe(self, job_id: str) -> Observation:
        directory = self.job_directory(job_id)
        proc = read_record(directory / f"{job_id}.proc", RunnerRecord, "runner record")
        if proc is None:
            return Observation(JobStatus.FAILED, reason="lost: the job's directory has no runner")
        runner_alive = _alive(proc.runner_pid, directory)
        cancelled = (directory / f"{job_id}.cancelled").exists()
        indices = read_indices(directory, job_id)
        if indices is None:
            return task_observation(
                self._task_state(directory, job_id, runner_alive, cancelled, None)
            )
        return array_observation(
            [self._task_state(directory, job_id, runner_alive, cancelled, i) for i in indices]
        )

    @staticmethod
    def _task_state(
        directory: Path, job_id: str, runner_alive: bool, cancelled: bool, index: int | None
    ) -> ElementState:
        """One task's state from its files (`index` None: the task of a single job)."""
        base = task_base(directory, job_id, index)
        started = epoch(_read_float(base.with_name(f"{base.name}.started")))
        finished = exit_state(directory, job_id, index)
        if finished is None and not runner_alive:
            finished = exit_state(directory, job_id, index)  # it may just have ended
        if finished is not None:
            if cancelled and finished.status is JobStatus.FAILED:
                return finished.model_copy(
                    update={"status": JobStatus.CANCELLED, "reason": CANCELLED_BY_USER}
                )
            return finished
        element = index or 0
        if cancelled:
            return ElementState(index=element, status=JobStatus.CANCELLED,
                                reason=CANCELLED_BY_USER, started_at=started)  # fmt: skip
        if runner_alive:
            status = JobStatus.RUNNING if started is not None else JobStatus.PENDING
            return ElementState(index=element, status=status, started_at=started)
        return ElementState(
            index=element,
            status=JobStatus.FAILED,
            reason="lost: its processes ended without an exit record (killed outside jobgate?)",
            started_at=started,
        )

    # -- cancel ------------------------------------------------------------------

    def cancel(self, jobs: Mapping[str, str]) -> None:
        for job_id in jobs:
            (self.job_directory(job_id) / f"{job_id}.cancelled").touch()
        processes = [self._processes(job_id) for job_id in jobs]
        left = end_jobs(processes, self.settings.cancel_grace_s)
        if left:
            raise BackendError(f"job(s) {', '.join(left)}: processes survived SIGKILL")

    def _end_leftovers(self, job_ids: Sequence[str]) -> None:
        """Kill what finished jobs left running, as a batch scheduler does at a job's end."""
        left = end_jobs([self._processes(job_id) for job_id in job_ids], grace_s=0)
        if left:
            log.warning("finished job(s) %s: processes survived SIGKILL", ", ".join(left))

    def _processes(self, job_id: str) -> JobProcesses:
        directory = self.job_directory(job_id)
        try:
            proc = read_record(directory / f"{job_id}.proc", RunnerRecord, "runner record")
        except UnreadableRecordError:  # the job failed for it: its group is unknown
            proc = None
        try:
            cgroup: Path | None = Path((directory / f"{job_id}.cgroup").read_text("utf-8"))
        except FileNotFoundError:
            cgroup = None
        return JobProcesses(job_id, proc.pgid if proc else None, cgroup)


def _runner_processes(directory: Path) -> list[int]:
    """Pids of the live processes running the job's runner (or about to: the launcher's
    child holds the runner's path in its arguments from the start)."""
    runner = str(directory / "runner.sh")
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and runner in (proc.info["cmdline"] or ()):
            found.append(proc.pid)
    return found


def _discard(cgroup: Path | None) -> None:
    """Remove the cgroup made for a job that was never launched."""
    if cgroup is not None:
        with contextlib.suppress(OSError):
            cgroup.rmdir()


def _runner_errors(directory: Path) -> str:
    try:
        errors = (directory / "runner.err").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        errors = ""
    return errors.strip()[-500:] or "it wrote no error"


def _alive(pid: int, directory: Path) -> bool:
    """Whether `pid` is still the job's runner: alive, not a zombie, running from `directory`."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and str(directory) + "/runner.sh" in (
            proc.cmdline()
        )
    except psutil.Error:
        return False


class RunnerRecord(BaseModel):
    """What runner.sh writes once it runs: the job's process group and its own pid."""

    model_config = ConfigDict(extra="forbid", strict=True)
    pgid: int
    runner_pid: int


def _read_float(path: Path) -> float | None:
    """The time in `path`; when the file system was too full to hold it (an empty file),
    the time the file was made, which is the same moment."""
    try:
        return float(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return path.stat().st_mtime
