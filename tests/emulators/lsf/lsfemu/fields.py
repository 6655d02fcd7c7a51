"""bjobs -o fields: their values, and the ``-o`` format string.

A value of None is an empty field: ``-`` in text output, ``""`` in JSON.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import config, procs, timefmt
from .errors import LsfError
from .model import Job, Task, term_text

#: EFFECTIVE_RESREQ of a job submitted without -R, as LSF shows it.
DEFAULT_RESREQ = "select[type == local] order[r15s:pg] "


@dataclass(frozen=True)
class Row:
    """One task, and what a field needs to show it."""

    job: Job
    task: Task
    now: float
    hms: bool = False
    unit: str | None = None

    @property
    def started(self) -> bool:
        return self.task.start_time is not None and self.task.pid > 0


def _seconds(row: Row, value: float, decimals: bool) -> str:
    if row.hms:
        return timefmt.hms(value)
    return f"{value:.1f} second(s)" if decimals else f"{int(value)} second(s)"


def _exit_code(row: Row) -> str | None:
    task = row.task
    if task.stat != "EXIT" or task.exit_code is None:
        return None
    return str(task.exit_code)


def _finish_time(row: Row) -> str | None:
    task, job = row.task, row.job
    if task.finish_time is not None:
        return f"{timefmt.short(task.finish_time)} L"
    if task.stat == "RUN" and task.start_time is not None and job.runlimit_min is not None:
        end = task.start_time + job.runlimit_min * config.minute_s()
        return f"{timefmt.short(end)} {'X' if row.now > end else 'L'}"
    return None


def _run_time(row: Row) -> str | None:
    task = row.task
    if task.start_time is None:
        return _seconds(row, 0, decimals=False)
    end = task.finish_time if task.finish_time is not None else row.now
    return _seconds(row, max(0.0, end - task.start_time), decimals=False)


def _pids(row: Row) -> str | None:
    if row.task.stat != "RUN" or row.task.pid <= 0:
        return None
    pids = sorted(info.pid for info in procs.tree(row.task.pid))
    return ",".join(str(pid) for pid in pids) or None


def _exec_home(row: Row) -> str | None:
    for event in reversed(row.task.events):
        if event.kind == "start":
            return str(event.data.get("home", "")) or None
    return None


def _exec_cwd(row: Row) -> str | None:
    for event in reversed(row.task.events):
        if event.kind == "start":
            return str(event.data.get("cwd", "")) or None
    return None


def _mem(kb: int, row: Row) -> str | None:
    return timefmt.memory(kb, row.unit) if kb > 0 else None


def _runtimelimit(row: Row) -> str | None:
    minutes = row.job.runlimit_min
    if minutes is None:
        return None
    return timefmt.hms(minutes * 60) if row.hms else f"{minutes:.1f}/{row.job.exec_host}"


Getter = Callable[[Row], str | None]

FIELDS: dict[str, Getter] = {
    "jobid": lambda r: str(r.job.jobid),
    "jobindex": lambda r: str(r.task.index),
    "job_name": lambda r: r.job.task_name(r.task),
    "stat": lambda r: r.task.stat,
    "user": lambda r: r.job.user,
    "user_group": lambda r: None,
    "queue": lambda r: r.job.queue,
    "proj_name": lambda r: r.job.project,
    "job_description": lambda r: None,
    "job_group": lambda r: None,
    "job_priority": lambda r: None,
    "pids": _pids,
    "exit_code": _exit_code,
    "exit_reason": lambda r: term_text(r.task.term_reason) if r.task.term_reason else None,
    "pend_reason": lambda r: (
        f"{r.task.pend_reason};" if r.task.stat in {"PEND", "PSUSP"} and r.task.pend_reason
        else None
    ),
    "from_host": lambda r: r.job.from_host,
    "exec_host": lambda r: ":".join([r.job.exec_host] * r.job.slots) if r.started else None,
    "submit_time": lambda r: timefmt.short(r.job.submit_time),
    "start_time": lambda r: timefmt.short(r.task.start_time) if r.task.start_time else None,
    "finish_time": _finish_time,
    "cpu_used": lambda r: _seconds(r, r.task.cpu_time, decimals=True),
    "run_time": _run_time,
    "mem": lambda r: _mem(r.task.mem_kb, r) if r.task.stat == "RUN" else None,
    "max_mem": lambda r: _mem(r.task.max_mem_kb, r),
    "avg_mem": lambda r: None,
    "swap": lambda r: None,
    "memlimit": lambda r: _mem(r.job.memlimit_kb or 0, r),
    "runtimelimit": _runtimelimit,
    "sub_cwd": lambda r: r.job.shown_path(r.job.subcwd),
    "exec_cwd": _exec_cwd,
    "exec_home": _exec_home,
    "output_file": lambda r: r.job.output,
    "error_file": lambda r: r.job.error,
    "input_file": lambda r: r.job.input,
    "command": lambda r: r.job.command,
    "slots": lambda r: str(r.job.slots),
    "nthreads": lambda r: None,
    "effective_resreq": lambda r: r.job.resreq or DEFAULT_RESREQ,
    "combined_resreq": lambda r: r.job.resreq or DEFAULT_RESREQ,
    "dependency": lambda r: r.job.dependency,
    "gpu_num": lambda r: None,
}  # fmt: skip

#: Short names bjobs -o accepts for some fields.
ALIASES = {
    "id": "jobid",
    "name": "job_name",
    "state": "stat",
    "proj": "proj_name",
    "project": "proj_name",
    "cwd": "sub_cwd",
    "cmd": "command",
    "exec_host": "exec_host",
}

_DELIMITER = re.compile(r"""delimiter=(?P<q>['"])(?P<d>.*?)(?P=q)""")


@dataclass(frozen=True)
class Column:
    name: str
    width: int | None = None
    right: bool = False
    unit: str | None = None

    @property
    def header(self) -> str:
        return self.name.upper()


@dataclass(frozen=True)
class Format:
    columns: list[Column]
    delimiter: str = " "


def parse_format(text: str) -> Format:
    """An -o format: ``"field[:[-][width]][:unit] ... [delimiter='c']"``."""
    delimiter = " "
    match = _DELIMITER.search(text)
    if match is not None:
        delimiter = match["d"]
        text = text[: match.start()] + text[match.end() :]
    columns = []
    for spec in text.split():
        parts = spec.split(":")
        name = ALIASES.get(parts[0].lower(), parts[0].lower())
        if name == "all":
            columns += [Column(field) for field in FIELDS]
            continue
        if name not in FIELDS:
            raise LsfError(f"{parts[0]}: Illegal field name in -o.")
        width, right, unit = None, False, None
        if len(parts) > 1 and parts[1]:
            size = parts[1]
            right = size.startswith("-")
            size = size.lstrip("-")
            if size:
                if not size.isdigit():
                    raise LsfError(f"{spec}: Illegal width in -o.")
                width = int(size)
        if len(parts) > 2 and parts[2]:
            unit = timefmt.unit_name(parts[2])
        columns.append(Column(name, width, right, unit))
    if not columns:
        raise LsfError("-o: no output field is specified.")
    return Format(columns, delimiter)


def value(
    column: Column, job: Job, task: Task, *, now: float | None = None, hms: bool = False
) -> str | None:
    row = Row(job, task, time.time() if now is None else now, hms, column.unit)
    return FIELDS[column.name](row)


def fit(text: str, column: Column) -> str:
    """Cut and pad a text value to the column's width, as -o does."""
    if column.width is None:
        return text
    if len(text) > column.width:
        if column.name == "job_name":
            text = "*" + text[len(text) - column.width + 1 :]
        else:
            text = text[: column.width]
    return text.rjust(column.width) if column.right else text.ljust(column.width)
