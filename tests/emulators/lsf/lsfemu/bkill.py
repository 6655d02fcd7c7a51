"""bkill: end jobs (SIGINT, SIGTERM, SIGKILL, carried out by the job's runner) or signal them.

A pending job ends at once, as EXIT with TERM_OWNER, without ever running.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from . import cmdline, config, procs, selection
from .errors import LsfError
from .model import Job, Kill, Task
from .store import Store

FLAGS = {"-r", "-l", "-b"}
VALUED = {"-s", "-J", "-u", "-q", "-C", "-app", "-g", "-m", "-sla", "-stat"}
USAGE = (
    "Usage: bkill [-h] [-V] [-l] [-b] [-r | -s signal_value | signal_name] [-J job_name]\n"
    "             [-q queue_name] [-u user_name | -u all] [-C kill_reason]\n"
    '             [0] [job_ID ... | "job_ID[index]" ...]'
)
SIGNAL_NAMES = " ".join(s.name[3:] for s in sorted(signal.Signals, key=int) if s < 32)


def _signal(text: str) -> signal.Signals:
    name = text.upper().removeprefix("SIG")
    try:
        return signal.Signals(int(name)) if name.isdigit() else signal.Signals["SIG" + name]
    except (KeyError, ValueError) as error:
        raise LsfError(f"{text}: Illegal signal value") from error


def _end_pending(job: Job, task: Task, user: str, now: float) -> None:
    task.record(now, "signal", signal="KILL", user=user)
    task.stat, task.term_reason, task.finish_time = "EXIT", "TERM_OWNER", now
    task.pend_reason = ""
    task.record(now, "finish", stat="EXIT", never_started=True, reason="TERM_OWNER", cpu=0.0)


def _end_running(job: Job, task: Task, user: str, now: float, force: bool) -> None:
    if task.kill is None:
        task.record(now, "signal", signal="KILL", user=user)
        task.kill = Kill(reason="TERM_FORCE_OWNER" if force else "TERM_OWNER", requested=now)
    if force or not procs.alive(job.runner_pid):
        # No runner to carry the sequence out (or -r): end it here and now.
        procs.signal_task(task.pid, signal.SIGKILL)
        task.stat, task.term_reason, task.finish_time = "EXIT", task.kill.reason, now
        task.exit_code = 128 + signal.SIGKILL
        task.record(
            now,
            "finish",
            stat="EXIT",
            exit_code=task.exit_code,
            signal=int(signal.SIGKILL),
            cpu=task.cpu_time,
            reason=task.term_reason,
        )


def _forget_zombi(task: Task, now: float) -> None:
    task.stat, task.term_reason, task.finish_time = "EXIT", "TERM_FORCE_OWNER", now
    task.record(now, "finish", stat="EXIT", never_started=True, reason="TERM_FORCE_OWNER")


def kill_tasks(
    root: Path, jobid: int, indices: frozenset[int] | None, parsed: cmdline.Parsed
) -> str | None:
    """Act on one job (or some of its elements); an error message, or None when done."""
    store = Store(root)
    user = config.user()
    force = "-r" in parsed.flags
    sig = _signal(parsed.values["-s"]) if "-s" in parsed.values else None
    now = time.time()
    with store.update(jobid) as job:
        tasks = [t for t in job.tasks if indices is None or t.index in indices]
        tasks = [t for t in tasks if not selection.cleaned(root, job, t, now)]
        if not tasks:
            return "No matching job found"
        live = [t for t in tasks if not t.finished]
        if not live:
            return "Job has already finished"
        for task in live:
            if sig is not None:
                if task.stat in {"PEND", "PSUSP"}:
                    return "Job has not started yet"
                procs.signal_task(task.pid, sig)
                continue
            if task.stat in {"PEND", "PSUSP"}:
                _end_pending(job, task, user, now)
            elif task.stat == "ZOMBI":
                # mbatchd keeps trying to reach the lost job; only -r removes it.
                if force:
                    _forget_zombi(task, now)
            else:
                _end_running(job, task, user, now, force)
    return None


def _targets(root: Path, parsed: cmdline.Parsed) -> list[tuple[str, int, frozenset[int] | None]]:
    """(how to name it, job ID, indices) for every job the arguments select."""
    store = Store(root)
    user = parsed.values.get("-u", config.user())
    pattern = parsed.values.get("-J")
    queue = parsed.values.get("-q")

    def chosen(job: Job) -> list[Task]:
        if user != "all" and job.user != user:
            return []
        if queue is not None and job.queue != queue:
            return []
        tasks = [t for t in job.tasks if not t.finished]
        if pattern is not None:
            tasks = [t for t in tasks if selection.name_matches(job, t, pattern)]
        return tasks

    if parsed.args and "0" not in parsed.args:
        targets = []
        for text in parsed.args:
            arg = selection.parse_job_arg(text)
            targets.append((text, arg.jobid, arg.indices))
        return targets
    matches = []
    for job in selection.latest_first(store.all_jobs()):
        tasks = chosen(job)
        if tasks:
            whole = len(tasks) == len([t for t in job.tasks if not t.finished])
            indices = None if whole or not job.is_array else frozenset(t.index for t in tasks)
            name = str(job.jobid) if indices is None else job.task_id(tasks[0])
            matches.append((name, job.jobid, indices))
    if "0" in parsed.args:
        return matches
    return matches[:1]  # -J/-q/-u without a job ID: the user's most recent such job


def main(root: Path, argv: list[str]) -> int:
    parsed = cmdline.parse("bkill", argv, FLAGS, VALUED, USAGE)
    if "-l" in parsed.flags:
        print(SIGNAL_NAMES)
        return 0
    selectors = {"-J", "-q", "-u", "-app", "-g", "-m", "-sla"} & parsed.values.keys()
    if not parsed.args and not selectors:
        raise LsfError(f"bkill: a job ID, 0, or one of -J, -q, -u is required\n{USAGE}")
    targets = _targets(root, parsed)
    if not targets:
        message = "No unfinished job found" if "0" in parsed.args else "No matching job found"
        print(message, file=sys.stderr)
        return 255
    store = Store(root)
    status = 0
    verb = "signaled" if "-s" in parsed.values else "terminated"
    for name, jobid, indices in targets:
        error = "No matching job found"
        if store.load(jobid) is not None:
            error = kill_tasks(root, jobid, indices, parsed) or ""
        if error:
            print(f"Job <{name}>: {error}", file=sys.stderr)
            status = 255
        else:
            print(f"Job <{name}> is being {verb}", flush=True)
    return status
