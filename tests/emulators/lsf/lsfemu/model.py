"""What the emulator knows of a job: one Job per job id, one Task per array element.

A job that is not an array has one task, of index 0. Every change of a task is
also kept as an Event, from which bhist tells the job's history.
"""

from __future__ import annotations

import dataclasses
import pwd
from dataclasses import dataclass, field
from typing import Any

#: Task states in which nothing more happens to the task.
FINISHED = frozenset({"DONE", "EXIT"})

#: How bjobs, bhist and job reports describe why LSF ended a job.
TERM_TEXT = {
    "TERM_OWNER": "job killed by owner",
    "TERM_ADMIN": "job killed by root or LSF administrator",
    "TERM_RUNLIMIT": "job killed after reaching LSF run time limit",
    "TERM_MEMLIMIT": "job killed after reaching LSF memory usage limit",
    "TERM_CWD_NOTEXIST": (
        "current working directory is not accessible or does not exist on the execution host"
    ),
}


def term_text(reason: str) -> str:
    """``TERM_OWNER: job killed by owner`` for ``TERM_OWNER``."""
    return f"{reason}: {TERM_TEXT.get(reason, 'job killed')}"


@dataclass
class Event:
    """Something that happened to a task, for bhist: ``kind`` and what goes with it."""

    time: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Kill:
    """A request to end a running task: why, and which signals were sent when."""

    reason: str
    requested: float
    signals: list[str] = field(default_factory=list)
    last_signal_time: float = 0.0


@dataclass
class Task:
    """One element of a job (the only one, of index 0, when the job is not an array)."""

    index: int
    stat: str = "PEND"
    pend_reason: str = ""
    pid: int = 0
    start_time: float | None = None
    finish_time: float | None = None
    exit_code: int | None = None
    term_reason: str = ""
    max_mem_kb: int = 0
    mem_kb: int = 0
    cpu_time: float = 0.0
    kill: Kill | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.stat in FINISHED

    def record(self, time: float, kind: str, **data: Any) -> None:
        self.events.append(Event(time, kind, data))


@dataclass
class Job:
    """A submitted job, as bsub recorded it, and its tasks."""

    jobid: int
    user: str
    name: str
    command: str
    queue: str
    project: str
    from_host: str
    exec_host: str
    cluster: str
    submit_time: float
    subcwd: str
    cwd: str
    script: str
    env: dict[str, str]
    login_shell: str | None = None
    output: str | None = None
    output_overwrite: bool = False
    error: str | None = None
    error_overwrite: bool = False
    dependency: str | None = None
    runlimit_min: float | None = None
    memlimit_kb: int | None = None
    slots: int = 1
    resreq: str | None = None
    gpu: str | None = None
    input: str | None = None
    mail_report: bool = False
    array_spec: str | None = None
    array_limit: int | None = None
    runner_pid: int = 0
    tasks: list[Task] = field(default_factory=list)

    @property
    def is_array(self) -> bool:
        return self.array_spec is not None

    def task(self, index: int) -> Task | None:
        for task in self.tasks:
            if task.index == index:
                return task
        return None

    def task_name(self, task: Task) -> str:
        """The job name bjobs shows for the task: ``name[index]`` for array elements."""
        return f"{self.name}[{task.index}]" if self.is_array else self.name

    def shown_path(self, path: str) -> str:
        """A directory as bjobs and bhist show it: ``$HOME/work`` under the user's home."""
        try:
            home = pwd.getpwnam(self.user).pw_dir.rstrip("/")
        except KeyError:
            return path
        if home and (path == home or path.startswith(home + "/")):
            return "$HOME" + path[len(home) :]
        return path

    def task_id(self, task: Task) -> str:
        """How LSF names the task in messages: ``123`` or ``123[4]``."""
        return f"{self.jobid}[{task.index}]" if self.is_array else str(self.jobid)

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(self)
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        tasks = [_task_from_dict(t) for t in data.get("tasks", [])]
        return cls(**{**data, "tasks": tasks})


def _plain(value: Any) -> Any:
    """A dataclass as JSON-ready data (like dataclasses.asdict, without its deep copies)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _task_from_dict(data: dict[str, Any]) -> Task:
    kill = Kill(**data["kill"]) if data.get("kill") else None
    events = [Event(**e) for e in data.get("events", [])]
    return Task(**{**data, "kill": kill, "events": events})
