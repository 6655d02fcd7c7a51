"""Which tasks a command's arguments name: ``1234``, ``"1234[3]"``, ``-J 'name*'``.

Job names are matched with ``*`` as the only wildcard, anywhere but inside an
array index: ``job*`` matches ``jobA`` and every element of array ``jobarr``;
``arr[2]`` or ``*rr[1-3]`` pick elements of arrays.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from . import config, faults
from .arrays import parse_job_name
from .errors import LsfError
from .model import Job, Task

_JOB_ARG = re.compile(r"^(?P<id>\d+)(?:\[(?P<spec>[^\[\]]+)\])?$")


@dataclass(frozen=True)
class JobArg:
    """A job ID argument, maybe restricted to some array indices."""

    text: str
    jobid: int
    indices: frozenset[int] | None


def parse_job_arg(text: str) -> JobArg:
    match = _JOB_ARG.match(text.strip())
    if match is None:
        raise LsfError(f"{text}: Illegal job ID.")
    indices = None
    if match["spec"] is not None:
        array = parse_job_name(f"x[{match['spec']}]")
        if array is None:
            raise LsfError(f"{text}: Illegal job ID.")
        indices = frozenset(array.indices)
    return JobArg(text, int(match["id"]), indices)


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern) + r"\Z")


def name_filter(pattern: str) -> tuple[re.Pattern[str], frozenset[int] | None]:
    """A -J pattern as a name regex and, when it ends in ``[...]``, the indices it picks."""
    match = re.match(r"^(?P<base>.*)\[(?P<spec>[^\[\]]*)\]$", pattern)
    if match is None:
        return _wildcard(pattern), None
    if "*" in match["spec"]:
        return re.compile(r"(?!)"), frozenset()  # a wildcard inside an index matches nothing
    try:
        array = parse_job_name(f"x[{match['spec']}]")
    except LsfError:
        return re.compile(r"(?!)"), frozenset()
    return _wildcard(match["base"]), frozenset(array.indices if array else ())


def name_matches(job: Job, task: Task, pattern: str) -> bool:
    regex, indices = name_filter(pattern)
    if indices is not None:
        return job.is_array and task.index in indices and bool(regex.match(job.name))
    return bool(regex.match(job.name))


def arg_matches(job: Job, task: Task, arg: JobArg) -> bool:
    return job.jobid == arg.jobid and (arg.indices is None or task.index in arg.indices)


def cleaned(root: Path, job: Job, task: Task, now: float | None = None) -> bool:
    """Whether mbatchd has forgotten this finished task (CLEAN_PERIOD passed)."""
    if not task.finished or task.finish_time is None:
        return False
    period = config.clean_period_s()
    if faults.matches(root, faults.VANISH, job.name) or faults.matches(
        root, faults.VANISH, job.task_name(task)
    ):
        period = 0.0
    now = time.time() if now is None else now
    return now - task.finish_time >= period


def latest_first(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: job.jobid, reverse=True)
