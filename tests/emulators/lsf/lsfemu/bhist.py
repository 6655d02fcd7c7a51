"""bhist: job history from the event record, which outlives CLEAN_PERIOD."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from . import cmdline, config, history, selection
from .model import Job, Task
from .store import Store

FLAGS = {"-l", "-UF", "-a", "-d", "-p", "-r", "-s", "-w", "-b", "-e"}
VALUED = {"-n", "-J", "-u", "-q", "-P", "-m", "-C", "-D", "-S", "-f", "-N", "-app", "-g", "-G"}
USAGE = (
    "Usage: bhist [-h] [-V] [-l [-UF]] [-a] [-b] [-d] [-e] [-p] [-r] [-s] [-w]\n"
    "             [-n number_logfiles | -n 0] [-J job_name] [-q queue_name]\n"
    '             [-u user_name | -u all] [job_ID ... | "job_ID[index]" ...]'
)
SEPARATOR = "-" * 78

Row = tuple[Job, Task]


def _state_ok(task: Task, flags: set[str]) -> bool:
    if "-a" in flags:
        return True
    if "-d" in flags or "-e" in flags:
        return task.finished
    if "-p" in flags:
        return task.stat in {"PEND", "PSUSP"}
    if "-r" in flags:
        return task.stat == "RUN"
    if "-s" in flags:
        return task.stat in {"PSUSP", "USUSP", "SSUSP"}
    return not task.finished


def find(root: Path, parsed: cmdline.Parsed) -> list[Row]:
    store = Store(root)
    rows: list[Row] = []
    pattern = parsed.values.get("-J")
    if parsed.args:
        for text in parsed.args:
            arg = selection.parse_job_arg(text)
            job = store.load(arg.jobid)
            if job is not None:
                rows += [(job, t) for t in job.tasks if selection.arg_matches(job, t, arg)]
        return rows
    user = parsed.values.get("-u", config.user())
    for job in store.all_jobs():
        if user != "all" and job.user != user:
            continue
        if "-q" in parsed.values and job.queue != parsed.values["-q"]:
            continue
        for task in job.tasks:
            if pattern is not None and not selection.name_matches(job, task, pattern):
                continue
            if _state_ok(task, parsed.flags):
                rows.append((job, task))
    return rows


def _short_name(name: str) -> str:
    return name if len(name) <= 8 else "*" + name[-7:]


def summary_table(rows: list[Row], now: float) -> list[str]:
    names = ["PEND", "PSUSP", "RUN", "USUSP", "SSUSP", "UNKWN", "TOTAL"]
    lines = [
        "Summary of time in seconds spent in various states:",
        "JOBID   USER    JOB_NAME  " + "".join(n.ljust(8) for n in names).rstrip(),
    ]
    for job, task in rows:
        times = history.state_times(job, task, now)
        cells = [
            job.task_id(task).ljust(7),
            job.user[:7].ljust(7),
            _short_name(job.task_name(task)).ljust(9),
            "".join(str(times[n]).ljust(8) for n in names),
        ]
        lines.append(" ".join(cells).rstrip())
    return lines


def main(root: Path, argv: list[str]) -> int:
    parsed = cmdline.parse("bhist", argv, FLAGS, VALUED, USAGE)
    now = time.time()
    rows = find(root, parsed)
    if not rows:
        print("No matching job found", file=sys.stderr)
        return 255
    if "-l" in parsed.flags:
        lines: list[str] = []
        for number, (job, task) in enumerate(rows):
            if number:
                lines.append(SEPARATOR)
            lines += history.long_block(job, task, "-UF" in parsed.flags, now)
            lines.append("")
    else:
        lines = summary_table(rows, now)
    print("\n".join(lines))
    return 0
