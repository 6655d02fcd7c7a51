"""The local backend: each job is a process group on the worker's own host.

A job lives in ``<work_dir>/<job id>/``: its program, the runner and task
scripts, and per task ``<id>[.<index>].out/.err/.started/.exit``. The runner is
detached (its own session, reparented away from the worker), so a job outlives
the worker that started it; its exit record is written by the task script, so
the truth survives too, and any later worker reads it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from jobgate.client.errors import BackendError
from jobgate.client.ids import JOB_ID_PATTERN
from jobgate.client.models import ElementState, JobSpec, JobStatus, aggregate_elements
from jobgate.client.profiles import ClusterProfile
from jobgate.client.store import Observation
from jobgate.workers.backends.base import Backend, LogChunk, Stream

SCRIPTS = Path(__file__).with_name("local_scripts")
START_TIMEOUT_S = 10.0
#: Worker settings that must not leak into a user's job environment.
_PRIVATE_ENV_PREFIXES = ("JOBGATE_", "CELERY_")


def render_program(spec: JobSpec) -> str:
    """The executable file a task runs: a script with a shebang, from command or script."""
    if isinstance(spec.command, list):
        return f"#!/bin/sh\nexec {shlex.join(spec.command)}\n"
    text = spec.command if spec.command is not None else spec.script
    assert text is not None
    return text if text.startswith("#!") else f"#!/bin/sh\n{text}\n"


def job_environment(job_id: str, spec: JobSpec, profile: ClusterProfile) -> dict[str, str]:
    """The worker's environment minus its own settings, then the job's env, then ids.

    `spec` is the spec as run: profile defaults applied, secret values filled in.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
    env.update(spec.env)
    env["JOBGATE_JOB_ID"] = job_id
    env["JOBGATE_CLUSTER"] = profile.name
    return env


def _epoch(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, profile: ClusterProfile) -> None:
        super().__init__(profile)
        self.settings = profile.local_settings
        self.work_dir = Path(self.settings.work_dir).expanduser()

    def job_dir(self, job_id: str) -> Path:
        if not JOB_ID_PATTERN.match(job_id):
            raise BackendError(f"local backend id {job_id!r} is not a jobgate job id")
        return self.work_dir / job_id

    # -- submit ------------------------------------------------------------------

    def find(self, job_id: str) -> str | None:
        return job_id if (self.job_dir(job_id) / f"{job_id}.proc").exists() else None

    def submit(self, job_id: str, spec: JobSpec) -> str:
        directory = self.job_dir(job_id)
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
                env=job_environment(job_id, spec, self.profile),
                start_new_session=True,
            )
        except OSError as e:
            raise BackendError(f"cannot start job {job_id} in {cwd}: {e}") from e
        launcher.wait(timeout=START_TIMEOUT_S)
        self._wait_for_runner(job_id, directory)
        return job_id

    @staticmethod
    def _prepare(directory: Path, job_id: str, spec: JobSpec) -> None:
        # A directory without a runner record is what an earlier attempt left when it
        # died before launching; the caller holds the job's submit lock, so clear it.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        program = directory / f"{job_id}.program"
        program.write_text(render_program(spec), encoding="utf-8")
        program.chmod(0o700)
        for script in ("runner.sh", "task.sh"):
            shutil.copyfile(SCRIPTS / script, directory / script)
        if spec.array:
            (directory / f"{job_id}.indices").write_text(json.dumps(spec.array.indices))

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

    def query(self, backend_ids: Sequence[str]) -> dict[str, Observation]:
        return {backend_id: self._observe(backend_id) for backend_id in backend_ids}

    def _observe(self, job_id: str) -> Observation:
        directory = self.job_dir(job_id)
        proc = _read_json(directory / f"{job_id}.proc")
        if proc is None:
            return Observation(JobStatus.FAILED, reason="lost: the job's directory has no runner")
        runner_alive = _alive(int(proc["runner_pid"]), directory)
        cancelled = (directory / f"{job_id}.cancelled").exists()
        indices = _array_indices(directory, job_id)
        if indices is None:
            state = self._task_state(directory / job_id, runner_alive, cancelled)
            return Observation(
                state.status, state.reason, state.exit_code, state.started_at, state.finished_at
            )
        elements = [
            self._task_state(directory / f"{job_id}.{i}", runner_alive, cancelled, index=i)
            for i in indices
        ]
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
        )

    @staticmethod
    def _task_state(
        base: Path, runner_alive: bool, cancelled: bool, index: int = 0
    ) -> ElementState:
        """One task's state from its files; a single job is a task of index 0."""
        started = _read_float(base.with_name(base.name + ".started"))
        exit_path = base.with_name(base.name + ".exit")
        record = _read_json(exit_path)
        if record is None and not runner_alive:
            record = _read_json(exit_path)  # the task may have finished between the two checks
        if record is not None:
            code = int(record["exit_code"])
            if code == 0:
                status, reason = JobStatus.SUCCEEDED, None
            elif cancelled:
                status, reason = JobStatus.CANCELLED, "cancelled by user"
            else:
                status, reason = JobStatus.FAILED, f"exit code {code}"
            return ElementState(
                index=index,
                status=status,
                exit_code=code,
                reason=reason,
                started_at=_epoch(float(record["started"])),
                finished_at=_epoch(float(record["finished"])),
            )
        if cancelled:
            return ElementState(
                index=index,
                status=JobStatus.CANCELLED,
                reason="cancelled by user",
                started_at=_epoch(started),
            )
        if runner_alive:
            status = JobStatus.RUNNING if started is not None else JobStatus.PENDING
            return ElementState(index=index, status=status, started_at=_epoch(started))
        return ElementState(
            index=index,
            status=JobStatus.FAILED,
            reason="lost: its processes ended without an exit record (killed outside jobgate?)",
            started_at=_epoch(started),
        )

    # -- cancel ------------------------------------------------------------------

    def cancel(self, backend_id: str) -> None:
        directory = self.job_dir(backend_id)
        (directory / f"{backend_id}.cancelled").touch()
        proc = _read_json(directory / f"{backend_id}.proc")
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

    # -- logs and discovery --------------------------------------------------------

    def logs(
        self, backend_id: str, stream: Stream, offset: int, max_bytes: int, index: int | None
    ) -> LogChunk:
        directory = self.job_dir(backend_id)
        indices = _array_indices(directory, backend_id)
        if indices is not None:
            index = indices[0] if index is None else index
            if index not in indices:
                raise BackendError(f"job {backend_id} has no array index {index}")
            base = f"{backend_id}.{index}"
        elif index is not None:
            raise BackendError(f"job {backend_id} is not an array; do not give an index")
        else:
            base = backend_id
        path = directory / f"{base}.{'out' if stream == 'stdout' else 'err'}"
        try:
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read(max_bytes)
        except FileNotFoundError:
            data = b""
        return LogChunk(data, offset + len(data))

    def discover(self) -> dict[str, str]:
        if not self.work_dir.is_dir():
            return {}
        return {
            entry.name: entry.name
            for entry in os.scandir(self.work_dir)
            if JOB_ID_PATTERN.match(entry.name)
            and os.path.exists(os.path.join(entry.path, f"{entry.name}.proc"))
        }


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


def _array_indices(directory: Path, job_id: str) -> list[int] | None:
    """The element indices of an array job; None for a single job."""
    try:
        return [int(i) for i in json.loads((directory / f"{job_id}.indices").read_text())]
    except FileNotFoundError:
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object the scripts wrote (always by rename, so never half-written)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if not isinstance(value, dict):
        raise BackendError(f"{path} does not hold a JSON object")
    return value


def _read_float(path: Path) -> float | None:
    try:
        return float(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
