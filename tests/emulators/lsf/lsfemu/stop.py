"""Stop everything an emulated cluster started: every runner, every job's processes.

Only processes that can be told apart as the emulator's are signalled: a runner
must have this state directory on its command line, a job's process
``LSB_JOBID=<its job>`` in its environment, so a recycled PID is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from . import procs
from .store import Store


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _job_of(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for entry in raw.split(b"\0"):
        if entry.startswith(b"LSB_JOBID="):
            return entry[len(b"LSB_JOBID=") :].decode(errors="replace")
    return None


def _runner_of(pid: int, root: Path) -> bool:
    """Whether ``pid`` is a runner (``python -m lsfemu.runner STATE_DIR JOBID``) of ``root``."""
    line = _cmdline(pid) if procs.alive(pid) else []
    if "lsfemu.runner" not in line:
        return False
    args = line[line.index("lsfemu.runner") + 1 :]
    return bool(args) and Path(args[0]).resolve() == root


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def shutdown(state_dir: str | os.PathLike[str]) -> int:
    """SIGKILL the runners, then the jobs' processes; the number of processes signalled."""
    root = Path(state_dir).resolve()
    store = Store(root)
    killed = 0
    for job in store.all_jobs():
        if _runner_of(job.runner_pid, root):
            killed += _kill(job.runner_pid)
    for job in store.all_jobs():  # read again: a runner may have started a task meanwhile
        for task in job.tasks:
            if task.pid <= 0:
                continue
            members = [info.pid for info in procs.tree(task.pid)]
            ours = [pid for pid in members if _job_of(pid) == str(job.jobid)]
            if ours:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(task.pid, signal.SIGKILL)
            killed += sum(_kill(pid) for pid in ours)
    return killed
