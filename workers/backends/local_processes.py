"""Every process a local job started, found and ended however it tried to get away.

A job starts as its runner's process group, but a program can leave the group
(``setsid sleep …``) or outlive its parent (``nohup sleep … &``). Where the worker may
make a cgroup v2 of its own, each job runs in one, ``<the worker's cgroup>/jobgate-<job
id>``: nothing the job starts can leave it, and ``cgroup.kill`` ends it all at once.
Elsewhere (no cgroup v2, not writable, a kernel without ``cgroup.kill``, or the profile
says ``cgroups: false``) a job's processes are its process group plus every process whose
initial environment (``/proc/<pid>/environ``, which ``setsid`` does not change) holds
``JOBGATE_JOB_ID=<job id>``; only a program that clears its own environment escapes that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from jobgate.workers.backends.programs import JOB_ID_ENV

log = logging.getLogger(__name__)

#: How long processes get to disappear after SIGKILL.
KILL_WAIT_S = 5.0
#: Pidfds a wait holds open at most; the other jobs wait their turn.
_MAX_PIDFDS = 256
#: How soon a job whose processes cannot be watched (no pidfds) is looked at again.
_RECHECK_S = 0.02


def make_cgroup(job_id: str) -> Path | None:
    """A new cgroup v2 for the job beside the worker's own processes, or None where the
    host does not let the worker make one that can be killed as a whole."""
    own = _own_cgroup()
    if own is None:
        return None
    path = own / f"jobgate-{job_id}"
    try:
        path.mkdir(exist_ok=True)  # an attempt that died before launching may have made it
    except OSError as e:
        log.debug("no cgroup for job %s (%s): finding its processes by environment", job_id, e)
        return None
    if not (path / "cgroup.kill").exists():
        with contextlib.suppress(OSError):
            path.rmdir()
        return None
    return path


def _own_cgroup() -> Path | None:
    """The worker's own cgroup in the cgroup v2 hierarchy, where one is mounted."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
        membership = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    roots = [line.split()[1] for line in mounts if line.split()[2:3] == ["cgroup2"]]
    paths = [line[len("0::") :] for line in membership if line.startswith("0::")]
    if not roots or not paths:
        return None
    return Path(roots[0]) / paths[0].lstrip("/")


@dataclass(frozen=True)
class JobProcesses:
    """Where to look for one job's processes: its cgroup when it has one, else its
    process group (when the runner recorded it) and its environment tag."""

    job_id: str
    pgid: int | None
    cgroup: Path | None


def end_jobs(jobs: Sequence[JobProcesses], grace_s: float) -> list[str]:
    """End every process of these jobs: SIGTERM to all of them at once and up to `grace_s`
    for them all to go (none when `grace_s` is 0), then SIGKILL to the rest. Returns the
    ids of jobs that still have processes `KILL_WAIT_S` after SIGKILL; the others'
    cgroups are removed.

    The waits sleep on the processes' pidfds, so a job that ends is seen ending at once.
    Jobs in cgroups are never looked for among all the host's processes; the others are,
    in one pass for all of them, when each signal is sent and once at the end.
    """
    rest = jobs
    if grace_s > 0:
        lasting = _wait_gone(jobs, _signal(jobs, signal.SIGTERM), grace_s)
        # A job without a cgroup may have started processes no pass has seen yet.
        rest = [job for job in jobs if job.job_id in lasting or job.cgroup is None]
    if rest:
        _wait_gone(rest, _signal(rest, signal.SIGKILL), KILL_WAIT_S)
    left = live_processes(jobs)
    for job in jobs:
        if job.cgroup is not None and job.job_id not in left:
            with contextlib.suppress(OSError):
                job.cgroup.rmdir()
    return sorted(left)


def live_processes(jobs: Sequence[JobProcesses]) -> dict[str, set[int]]:
    """The live (not zombie) processes of each job that has any, by job id."""
    found: dict[str, set[int]] = {}
    for job in jobs:
        if job.cgroup is not None and (pids := _cgroup_members(job.cgroup)):
            found[job.job_id] = pids
    untracked = [job for job in jobs if job.cgroup is None]
    if untracked:
        for job_id, pid in _group_and_tagged(untracked):
            found.setdefault(job_id, set()).add(pid)
    return found


def _signal(jobs: Sequence[JobProcesses], sig: signal.Signals) -> dict[str, set[int]]:
    """Send `sig` to every process of these jobs; returns them by job id."""
    for job in jobs:
        if job.cgroup is not None and sig is signal.SIGKILL:
            with contextlib.suppress(FileNotFoundError):
                (job.cgroup / "cgroup.kill").write_text("1", encoding="utf-8")
        elif job.cgroup is None and job.pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pgid, sig)
    known = live_processes(jobs)
    for pids in known.values():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    return known


def _wait_gone(
    jobs: Sequence[JobProcesses], known: dict[str, set[int]], timeout_s: float
) -> set[str]:
    """Wait up to `timeout_s` for every process of these jobs to end; returns the ids of
    the jobs that may still have some.

    Each job's processes are watched through pidfds (at most `_MAX_PIDFDS` open at
    once); when the last watched one of a job ends, the job is looked at again, since
    its processes may have started others meanwhile.
    """
    deadline = time.monotonic() + timeout_s
    by_id = {job.job_id: job for job in jobs}
    to_check = deque(by_id)
    unwatchable: list[str] = []
    watching: dict[int, str] = {}
    open_per_job: dict[str, int] = {}
    poller = select.poll()
    try:
        while True:
            while to_check and len(watching) < _MAX_PIDFDS:
                job_id = to_check.popleft()
                pids = known[job_id] = _members(by_id[job_id], known.get(job_id, set()))
                opened, failed = 0, False
                for pid in pids:
                    try:
                        fd = os.pidfd_open(pid)
                    except ProcessLookupError:
                        continue
                    except OSError:  # no pidfds here (or no file descriptors left)
                        failed = True
                        continue
                    poller.register(fd, select.POLLIN)
                    watching[fd] = job_id
                    opened += 1
                if opened:
                    open_per_job[job_id] = opened
                elif failed:
                    unwatchable.append(job_id)  # looked at again shortly
                elif pids:
                    to_check.append(job_id)  # they ended before they could be watched
            remaining_s = deadline - time.monotonic()
            if not (watching or to_check or unwatchable) or remaining_s <= 0:
                return {*watching.values(), *to_check, *unwatchable}
            wait_s = _RECHECK_S if unwatchable or to_check else remaining_s
            for fd, _ in poller.poll(max(1, int(min(wait_s, remaining_s) * 1000))):
                job_id = watching.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                open_per_job[job_id] -= 1
                if not open_per_job[job_id]:
                    to_check.append(job_id)
            to_check.extend(unwatchable)
            unwatchable.clear()
    finally:
        for fd in watching:
            os.close(fd)


def _members(job: JobProcesses, known: set[int]) -> set[int]:
    """A job's processes to wait for: its cgroup's, else those known still alive."""
    if job.cgroup is not None:
        return _cgroup_members(job.cgroup)
    return {pid for pid in known if _alive(pid)}


def _cgroup_members(cgroup: Path) -> set[int]:
    try:
        pids = {int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()}
    except FileNotFoundError:
        return set()
    return {pid for pid in pids if _alive(pid)}


def _group_and_tagged(jobs: Sequence[JobProcesses]) -> list[tuple[str, int]]:
    """(job id, pid) of every live process in one of these jobs' process groups or whose
    environment names one of them: one pass over every process of the host."""
    by_group = {job.pgid: job.job_id for job in jobs if job.pgid is not None}
    job_ids = {job.job_id for job in jobs}
    found = []
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            job_id = by_group.get(os.getpgid(proc.pid)) or proc.environ().get(JOB_ID_ENV)
        except (ProcessLookupError, psutil.Error):
            continue
        if job_id in job_ids:
            found.append((job_id, proc.pid))
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
