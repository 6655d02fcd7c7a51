"""The local backend: each job is a process group on the worker's own host.

A job lives in ``<work_dir>/<job id>/``: its program, the runner and task
scripts, and per task ``<id>[.<index>].out/.err/.started/.exit``. The runner is
detached (its own session, reparented away from the worker), so a job outlives
the worker that started it; its exit record is written by the task script, so
the truth survives too, and any later worker reads it.
"""

from __future__ import annotations

import os
import shutil
import signal
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
    epoch,
    exit_state,
    failed_if_unreadable,
    read_indices,
    read_json,
    read_record,
    task_base,
    write_indices,
)
from jobgate.workers.backends.programs import job_environment, render_program

SCRIPTS = Path(__file__).with_name("local_scripts")
START_TIMEOUT_S = 10.0


class LocalBackend(FileBackend[LocalProfile]):
    kind = "local"

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
        try:
            self._prepare(directory, job_id, spec)
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
                    '/bin/sh "$0" "$$" "$@" </dev/null >/dev/null 2>&1 &',
                    str(directory / "runner.sh"),
                    str(directory),
                    job_id,
                    str(parallel),
                    *indices,
                ],
                cwd=cwd,
                env=job_environment(job, self.profile),
                start_new_session=True,
            )
        except OSError as e:
            raise BackendError(f"cannot start job {job_id} in {cwd}: {e}") from e
        launcher.wait(timeout=START_TIMEOUT_S)
        self._wait_for_runner(job_id, directory)
        return job_id

    def _prepare(self, directory: Path, job_id: str, spec: JobSpec) -> None:
        # A directory without a runner record is what an earlier attempt left when it
        # died before launching; the caller holds the job's submit lock, so clear it.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        program = directory / f"{job_id}.program"
        program.write_text(render_program(spec, self.profile), encoding="utf-8")
        program.chmod(0o700)
        for script in ("runner.sh", "task.sh"):
            shutil.copyfile(SCRIPTS / script, directory / script)
        if spec.array:
            write_indices(directory, job_id, spec.array.indices)

    @staticmethod
    def _wait_for_runner(job_id: str, directory: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (directory / f"{job_id}.proc").exists():
            if time.monotonic() > deadline:
                raise BackendError(
                    f"job {job_id}: runner did not start within {START_TIMEOUT_S:g} s",
                    transient=True,
                )
            time.sleep(0.005)

    # -- status ------------------------------------------------------------------

    def query(self, jobs: Mapping[str, str]) -> dict[str, Observation]:
        return {job_id: failed_if_unreadable(partial(self._observe, job_id)) for job_id in jobs}

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
            self._cancel(job_id)

    def _cancel(self, backend_id: str) -> None:
        directory = self.job_directory(backend_id)
        (directory / f"{backend_id}.cancelled").touch()
        proc = read_json(directory / f"{backend_id}.proc")
        if proc is None:
            return
        pgid = int(proc["pgid"])
        for sig, grace_s in (
            (signal.SIGTERM, self.settings.cancel_grace_s),
            (signal.SIGKILL, 5.0),
        ):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace_s
            while group_members(pgid):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            else:
                return
        raise BackendError(f"job {backend_id}: process group {pgid} survived SIGKILL")


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group `pgid`.

    Where init reaps orphans, an empty group is gone at once; the scan of all
    processes is only needed while unreaped zombies still hold the group.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


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
