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
    process group and runner (when the runner recorded them) and its environment tag."""

    job_id: str
    pgid: int | None
    cgroup: Path | None
    runner_pid: int | None = None


def end_jobs(jobs: Sequence[JobProcesses], grace_s: float) -> list[str]:
    """End every process of these jobs: SIGTERM to all of them at once and up to `grace_s`
    for them all to go (none when `grace_s` is 0), then SIGKILL. Returns the ids of jobs
    that still have processes `KILL_WAIT_S` after SIGKILL; the others' cgroups are removed.

    The waits sleep on the processes' pidfds, so a job that ends is seen ending at once;
    every process of the host is looked at only to find a job's processes that left its
    group (jobs without a cgroup: once per signal and once at the end), or members of a
    group that outlived every process known to be in it.
    """
    if grace_s > 0:
        _wait_gone(jobs, _signal(jobs, signal.SIGTERM), grace_s)
    _wait_gone(jobs, _signal(jobs, signal.SIGKILL), KILL_WAIT_S)
    left = live_processes(jobs)
    for job in jobs:
        if job.cgroup is not None and job.job_id not in left:
            with contextlib.suppress(OSError):
                job.cgroup.rmdir()
    return sorted(left)


def live_processes(jobs: Sequence[JobProcesses]) -> dict[str, set[int]]:
    """The live (not zombie) processes of each job that has any, by job id."""
    found: dict[str, set[int]] = {}
    tagged = {job.job_id: job for job in jobs if job.cgroup is None}
    for job in jobs:
        pids = _cgroup_members(job.cgroup) if job.cgroup else _group_members(job.pgid)
        if pids:
            found[job.job_id] = pids
    if tagged:
        for job_id, pid in _tagged_processes(set(tagged)):
            found.setdefault(job_id, set()).add(pid)
    return found


def _signal(jobs: Sequence[JobProcesses], sig: signal.Signals) -> dict[str, set[int]]:
    """Send `sig` to every process of these jobs; returns the processes known to have
    got it, by job id (a group's members are found only when they are waited for)."""
    known: dict[str, set[int]] = {job.job_id: set() for job in jobs}
    for job in jobs:
        if job.cgroup is not None:
            if sig is signal.SIGKILL:
                with contextlib.suppress(FileNotFoundError):
                    (job.cgroup / "cgroup.kill").write_text("1", encoding="utf-8")
            known[job.job_id] = _cgroup_members(job.cgroup)
        elif job.pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pgid, sig)
            if job.runner_pid is not None and _in_group(job.runner_pid, job.pgid):
                known[job.job_id].add(job.runner_pid)
    tagged = {job.job_id for job in jobs if job.cgroup is None}
    for job_id, pid in _tagged_processes(tagged) if tagged else ():
        known[job_id].add(pid)
    for pids in known.values():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    return known


def _wait_gone(jobs: Sequence[JobProcesses], known: dict[str, set[int]], timeout_s: float) -> None:
    """Wait up to `timeout_s` for every process of these jobs to end.

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
                pids = known[job_id] = _members(by_id[job_id], known[job_id])
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
                return
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
    """A job's processes to wait for: its cgroup's, else those known still alive, else
    whatever still holds its process group (the only case that looks at every process)."""
    if job.cgroup is not None:
        return _cgroup_members(job.cgroup)
    alive = {pid for pid in known if _alive(pid)}
    return alive or _group_members(job.pgid)


def _in_group(pid: int, pgid: int) -> bool:
    try:
        return os.getpgid(pid) == pgid
    except ProcessLookupError:
        return False


def _cgroup_members(cgroup: Path) -> set[int]:
    try:
        pids = {int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()}
    except FileNotFoundError:
        return set()
    return {pid for pid in pids if _alive(pid)}


def _group_members(pgid: int | None) -> set[int]:
    """Pids of the live processes in process group `pgid`.

    Where init reaps orphans, an empty group is gone at once; the scan of all
    processes is only needed while unreaped zombies still hold the group.
    """
    if pgid is None:
        return set()
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return set()
    members = set()
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.add(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _tagged_processes(job_ids: set[str]) -> list[tuple[str, int]]:
    """(job id, pid) of every live process whose environment names one of `job_ids`."""
    found = []
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            job_id = proc.environ().get(JOB_ID_ENV)
        except psutil.Error:
            continue
        if job_id in job_ids:
            found.append((job_id, proc.pid))
    return found


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
