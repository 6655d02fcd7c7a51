"""Long-format job history, shared by bhist -l and bjobs -l.

Lines are wrapped at 79 columns, continuation lines indented 21 spaces, words
split anywhere, unless -UF asked for one unwrapped line per event.
"""

from __future__ import annotations

import time

from . import timefmt
from .model import Event, Job, Task, term_text

WIDTH = 79
INDENT = 21


def wrap(text: str, unformatted: bool) -> list[str]:
    if unformatted or len(text) <= WIDTH:
        return [text]
    lines = [text[:WIDTH]]
    rest = text[WIDTH:]
    step = WIDTH - INDENT
    while rest:
        lines.append(" " * INDENT + rest[:step])
        rest = rest[step:]
    return lines


def header(job: Job, task: Task) -> str:
    return (
        f"Job <{job.task_id(task)}>, Job Name <{job.task_name(task)}>, User <{job.user}>, "
        f"Project <{job.project}>, Command <{job.command}>"
    )


def submitted(job: Job) -> str:
    parts = [f"Submitted from host <{job.from_host}>", f"to Queue <{job.queue}>"]
    parts.append(f"CWD <{job.shown_path(job.subcwd)}>")
    if job.output:
        parts.append(f"Output File <{job.output}>")
    if job.error:
        parts.append(f"Error File <{job.error}>")
    if job.slots > 1:
        parts.append(f"{job.slots} Task(s)")
    if job.resreq:
        parts.append(f"Requested Resources <{job.resreq}>")
    if job.dependency:
        parts.append(f"Dependency Condition <{job.dependency}>")
    return ", ".join(parts) + ";"


def _cpu(event: Event) -> str:
    return f"The CPU time used is {float(event.data.get('cpu', 0.0)):.1f} seconds;"


def event_texts(job: Job, event: Event) -> list[str]:
    """What bhist -l says about one event (several lines for some)."""
    data = event.data
    if event.kind == "submit":
        return [submitted(job)]
    if event.kind == "start":
        pid, hosts = data.get("pid", 0), f"<{job.exec_host}>"
        dispatched = f"Dispatched to {hosts};"
        if job.slots > 1:
            dispatched = (
                f"Dispatched {job.slots} Task(s) on Host(s) <{job.slots}*{job.exec_host}>, "
                f"Allocated {job.slots} Slot(s) on Host(s) <{job.slots}*{job.exec_host}>;"
            )
        return [
            dispatched,
            f"Starting (Pid {pid});",
            f"Running with execution home <{data.get('home', '')}>, Execution CWD "
            f"<{data.get('cwd', '')}>, Execution Pid <{pid}>;",
        ]
    if event.kind == "signal":
        who = data.get("user", job.user)
        return [
            f"Signal <{data.get('signal', 'KILL')}> requested by user or administrator <{who}>;"
        ]
    if event.kind == "finish":
        return _finish_texts(data, event)
    return []


def _finish_texts(data: dict[str, object], event: Event) -> list[str]:
    reason = str(data.get("reason") or "")
    if data.get("stat") == "DONE":
        return [f"Done successfully. {_cpu(event)}"]
    if data.get("never_started"):
        lines = ["Exited;"]
    elif data.get("signal"):
        lines = [f"Exited by signal {data['signal']}. {_cpu(event)}"]
    else:
        lines = [f"Exited with exit code {data.get('exit_code')}. {_cpu(event)}"]
    if reason:
        lines.append(f"Completed <exit>; {term_text(reason)}.")
    else:
        lines.append("Completed <exit>;")
    return lines


def state_times(job: Job, task: Task, now: float) -> dict[str, int]:
    """Seconds the task spent in each state, for the bhist summaries."""
    end = task.finish_time if task.finish_time is not None else now
    started = task.start_time
    pend_end = started if started is not None else end
    times = dict.fromkeys(("PEND", "PSUSP", "RUN", "USUSP", "SSUSP", "UNKWN"), 0)
    held = task.stat == "PSUSP"
    times["PSUSP" if held else "PEND"] = int(max(0.0, pend_end - job.submit_time))
    if started is not None:
        times["RUN"] = int(max(0.0, end - started))
    times["TOTAL"] = sum(times.values())
    return times


def summary(job: Job, task: Task, now: float) -> list[str]:
    end = task.finish_time if task.finish_time is not None else now
    times = state_times(job, task, now)
    names = ["PEND", "PSUSP", "RUN", "USUSP", "SSUSP", "UNKWN", "TOTAL"]
    return [
        f"Summary of time in seconds spent in various states by  {timefmt.event(end)}",
        "  " + "".join(name.ljust(9) for name in names).rstrip(),
        "  " + "".join(str(times[name]).ljust(9) for name in names).rstrip(),
    ]


def long_block(job: Job, task: Task, unformatted: bool, now: float | None = None) -> list[str]:
    """The bhist -l block of one task."""
    now = time.time() if now is None else now
    lines = wrap(header(job, task), unformatted)
    for event in task.events:
        for text in event_texts(job, event):
            lines += wrap(f"{timefmt.event(event.time)}: {text}", unformatted)
    lines.append("")
    lines += summary(job, task, now)
    return lines
