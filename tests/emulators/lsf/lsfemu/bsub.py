"""bsub: record a job, start its runner, print ``Job <N> is submitted to queue <Q>.``"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from . import arrays, config, depend, environ, limits, options
from .errors import LsfError
from .model import Job, Task
from .store import Store

#: Pending reasons of a job just submitted, and of one submitted on hold (-H).
NEW_JOB_REASON = "New job is waiting for scheduling"
HELD_REASON = "The job was suspended by the user while pending"
USAGE = options.USAGE


def _choose_queue(requested: str | None) -> str:
    known = config.queues()
    if requested is None:
        return known[0]
    names = requested.split()
    for name in names:
        if name in known:
            return name
    raise LsfError(f"{names[0] if names else requested}: No such queue. Job not submitted.")


def _slots(value: str | None) -> int:
    if value is None:
        return 1
    first = value.split(",")[0].strip()
    if not first.isdigit() or int(first) < 1:
        raise LsfError(f"{value}: Bad argument for option -n. Job not submitted.")
    if int(first) > config.max_slots():
        raise LsfError("Too many processors requested. Job not submitted.")
    return int(first)


_RUSAGE = re.compile(r"rusage\[(?P<body>[^\[\]]*)\]")
_RUSAGE_ITEM = re.compile(r"^\s*\w+\s*=\s*\d+(?:\.\d+)?\s*[A-Za-z]*\s*$")


def _check_resreq(text: str) -> None:
    """What -R checking the emulator does: brackets pair up, rusage[] holds name=amount."""
    if text.count("[") != text.count("]"):
        raise LsfError("Bad resource requirement syntax. Job not submitted.")
    for section in _RUSAGE.finditer(text):
        items = re.split(r"[,:]", section["body"])
        if not all(_RUSAGE_ITEM.match(item) for item in items):
            raise LsfError("Error in rusage section. Job not submitted.")


def _check_dependency(text: str, store: Store, user: str) -> None:
    node = depend.parse(text)
    lookup = depend.job_lookup(store, user)
    for cond in depend.conditions(node):
        if not lookup(cond.ref):
            raise LsfError(f"{cond.ref}: No matching job found. Job not submitted.")


def _submission_cwd() -> str:
    """The current directory, spelled as the shell has it ($PWD) when that is the same."""
    here = os.getcwd()
    shell = os.environ.get("PWD", "")
    try:
        return shell if shell and os.path.samefile(shell, here) else here
    except OSError:
        return here


def _read_script() -> str:
    script = sys.stdin.read()
    if not script.strip():
        raise LsfError("Empty job. Job not submitted.")
    return script


def _display_command(script: str) -> str:
    """The job's command as bjobs and bhist show it: script lines joined by ';'."""
    return ";".join(line for line in script.splitlines() if line.strip())


def build_job(store: Store, argv: list[str]) -> tuple[Job, str, bool]:
    """Check a submission and turn it into a Job; also the job file text and default-queue."""
    opts, command = options.parse(argv)
    if command:
        text = " ".join(command)
        script = text + "\n"
    else:
        script = _read_script()
        opts = options.parse_directives(script).overridden_by(opts)
        text = _display_command(script)
    user = config.user()
    queue = _choose_queue(opts.get("-q"))
    name = text
    array = None
    if opts.get("-J") is not None:
        name = opts.get("-J") or ""
        array = arrays.parse_job_name(name)
        if array is not None:
            name = array.name
    if not name:
        raise LsfError("Bad job name. Job not submitted.")
    slots = _slots(opts.get("-n"))
    for resreq in opts.resreqs:
        _check_resreq(resreq)
    runlimit = limits.runlimit_minutes(opts.values["-W"]) if "-W" in opts.values else None
    memlimit = limits.memory_kb(opts.values["-M"]) if "-M" in opts.values else None
    dependency = opts.get("-w")
    if dependency is not None:
        _check_dependency(dependency, store, user)
    env = environ.submission_environment(opts.get("-env"), os.environ)
    subcwd = _submission_cwd()
    cwd = opts.get("-cwd") or subcwd
    login_shell = opts.get("-L")
    if login_shell is not None and not os.path.isabs(login_shell):
        raise LsfError(f"{login_shell}: Bad argument for option -L. Job not submitted.")
    indices = array.indices if array is not None else [0]
    hold = "-H" in opts.flags
    reason = HELD_REASON if hold else NEW_JOB_REASON
    tasks = [Task(index=i, stat="PSUSP" if hold else "PEND", pend_reason=reason) for i in indices]
    job = Job(
        jobid=0,
        user=user,
        name=name,
        command=text,
        queue=queue,
        project=opts.get("-P") or "default",
        from_host=config.hostname(),
        exec_host=config.hostname(),
        cluster=config.cluster(),
        submit_time=time.time(),
        subcwd=subcwd,
        cwd=cwd,
        script="",
        env=env,
        login_shell=login_shell,
        output=opts.get("-oo") or opts.get("-o"),
        output_overwrite="-oo" in opts.values,
        error=opts.get("-eo") or opts.get("-e"),
        error_overwrite="-eo" in opts.values,
        dependency=dependency,
        runlimit_min=runlimit,
        memlimit_kb=memlimit,
        slots=slots,
        resreq=" ".join(opts.resreqs) or None,
        gpu=opts.get("-gpu"),
        input=opts.get("-i"),
        mail_report="-N" in opts.flags,
        array_spec=array.spec if array is not None else None,
        array_limit=array.limit if array is not None else None,
        tasks=tasks,
    )
    return job, script, opts.get("-q") is None


def start_runner(root: Path, jobid: int) -> int:
    """Start the job's runner, detached: its own session, no stdio, not waited for."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = package_root
    process = subprocess.Popen(
        [sys.executable, "-m", "lsfemu.runner", str(root), str(jobid)],
        cwd="/",
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return process.pid


def main(root: Path, argv: list[str]) -> int:
    store = Store(root)
    job, script, default_queue = build_job(store, argv)
    job.jobid = store.next_job_id()
    script_path = store.script_path(job.jobid)
    script_path.write_text(script)
    job.script = str(script_path)
    for task in job.tasks:
        task.record(job.submit_time, "submit")
    store.save(job)
    runner_pid = start_runner(root, job.jobid)
    with store.update(job.jobid) as saved:
        saved.runner_pid = runner_pid
    where = "default queue" if default_queue else "queue"
    print(f"Job <{job.jobid}> is submitted to {where} <{job.queue}>.")
    return 0
