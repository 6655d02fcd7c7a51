"""The contract between client and workers: job specs, statuses and records.

Every model forbids unknown fields, so a misspelt option is an error at the
client, not a silently ignored setting on a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

MAX_ARRAY_ELEMENTS = 100_000

#: A cluster name: an RFC 1123 label, so it is safe in queue names and labels.
ClusterName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
#: A job name or tag: letters, digits, dot, dash, underscore; no paths, no spaces.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class JobStatus(StrEnum):
    """Where a job is in its life. NEW: accepted by the gateway, not yet on the cluster."""

    NEW = "NEW"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_pending(self) -> bool:
        return self in PENDING_STATES

    @property
    def is_running(self) -> bool:
        return self is JobStatus.RUNNING

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATES

    @property
    def is_active(self) -> bool:
        return self not in FINISHED_STATES

    @classmethod
    def finished_states(cls) -> frozenset[JobStatus]:
        return FINISHED_STATES

    @classmethod
    def active_states(cls) -> frozenset[JobStatus]:
        return ACTIVE_STATES


PENDING_STATES = frozenset({JobStatus.NEW, JobStatus.PENDING})
FINISHED_STATES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATES = frozenset(JobStatus) - FINISHED_STATES


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


_ARRAY_ITEM = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


class ArraySpec(_Model):
    """A job array: element indices and how many may run at once.

    Written as in Slurm: ``"0-4%2"`` (indices 0..4, at most 2 at once),
    ``"1,3,10-20:5"`` (a list with a stepped range). It serializes back to that text.
    """

    indices: list[int]
    max_concurrent: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_array_text(value)
        return value

    @field_validator("indices")
    @classmethod
    def _check_indices(cls, indices: list[int]) -> list[int]:
        if not indices:
            raise ValueError("an array needs at least one index")
        if len(indices) > MAX_ARRAY_ELEMENTS:
            raise ValueError(f"an array may have at most {MAX_ARRAY_ELEMENTS} elements")
        if min(indices) < 0:
            raise ValueError("array indices must be >= 0")
        return sorted(set(indices))

    @model_serializer
    def _to_text(self) -> str:
        return format_array_text(self.indices, self.max_concurrent)


def parse_array_text(text: str) -> dict[str, Any]:
    """Parse ``"0-4%2"``-style array text into ArraySpec fields; ValueError names the part."""
    body, percent, limit = text.strip().partition("%")
    indices: list[int] = []
    for item in body.split(","):
        match = _ARRAY_ITEM.match(item.strip())
        if not match:
            raise ValueError(
                f"array item {item!r} is not N, A-B or A-B:STEP (e.g. '0-9%2' or '1,3,5-7')"
            )
        start, end, step = match.groups()
        first, last = int(start), int(end if end is not None else start)
        if last < first:
            raise ValueError(f"array range {item!r} ends before it starts")
        count = (last - first) // int(step or 1) + 1
        if len(indices) + count > MAX_ARRAY_ELEMENTS:
            raise ValueError(f"an array may have at most {MAX_ARRAY_ELEMENTS} elements")
        indices.extend(range(first, last + 1, int(step or 1)))
    if percent and not limit.isdigit():
        raise ValueError(f"array concurrency limit {limit!r} after '%' is not a number")
    return {"indices": indices, "max_concurrent": int(limit) if limit else None}


def format_array_text(indices: Iterable[int], max_concurrent: int | None) -> str:
    """The compact text of sorted indices: runs of consecutive numbers become ranges."""
    parts: list[str] = []
    run: list[int] = []
    for index in indices:
        if run and index != run[-1] + 1:
            parts.append(_run_text(run))
            run = []
        run.append(index)
    if run:
        parts.append(_run_text(run))
    text = ",".join(parts)
    return f"{text}%{max_concurrent}" if max_concurrent else text


def _run_text(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


class Resources(_Model):
    """What a job asks of the cluster. Units are in the names."""

    cpus: int = Field(default=1, ge=1)
    memory_mb: int | None = Field(default=None, ge=1)
    gpus: int = Field(default=0, ge=0)
    walltime_s: int | None = Field(default=None, ge=1)
    queue: Name | None = None
    account: Name | None = None


class JobSpec(_Model):
    """What to run. Exactly one of `command` (shell text, or an argv list) and `script`."""

    name: Name
    command: str | list[str] | None = None
    script: str | None = None
    resources: Resources = Field(default_factory=Resources)
    env: dict[EnvName, str] = Field(default_factory=dict)
    working_dir: str | None = None
    array: ArraySpec | None = None
    tags: list[Name] = Field(default_factory=list)
    labels: dict[Name, str] = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _check_command(cls, command: str | list[str] | None) -> str | list[str] | None:
        if isinstance(command, list) and not command:
            raise ValueError("an argv command needs at least the program")
        if isinstance(command, str) and not command.strip():
            raise ValueError("command is empty")
        return command

    @field_validator("env")
    @classmethod
    def _check_env(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if "\x00" in value:
                raise ValueError(f"env value of {key} contains a NUL byte")
        return env

    @field_validator("working_dir")
    @classmethod
    def _check_working_dir(cls, path: str | None) -> str | None:
        if path is not None and (not path.startswith("/") or "\x00" in path or "\n" in path):
            raise ValueError("working_dir must be an absolute path without NUL or newline")
        return path

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return sorted(set(tags))

    @model_validator(mode="after")
    def _one_program(self) -> Self:
        if (self.command is None) == (self.script is None):
            raise ValueError("give exactly one of 'command' and 'script'")
        return self


class Transition(_Model):
    """One status change of a job, with when jobgate saw it."""

    status: JobStatus
    at: datetime
    reason: str | None = None
    exit_code: int | None = None


class ElementState(_Model):
    """The state of one element of a job array."""

    index: int
    status: JobStatus
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobRecord(_Model):
    """Everything jobgate knows of a job; the job store's copy is the source of truth."""

    id: str
    cluster: ClusterName
    owner: str
    name: str
    tags: list[str] = Field(default_factory=list)
    spec: JobSpec
    result_id: str
    status: JobStatus
    reason: str | None = None
    exit_code: int | None = None
    backend_id: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    history: list[Transition] = Field(default_factory=list)
    elements: list[ElementState] = Field(default_factory=list)


def aggregate_elements(elements: list[ElementState]) -> tuple[JobStatus, int | None, str | None]:
    """The status of an array from its elements: (status, exit code, reason).

    Finished only when every element has finished; then FAILED if any failed,
    else CANCELLED if any was cancelled, else SUCCEEDED. While elements remain, the
    array is RUNNING once any element has started or finished.
    """
    if not elements:
        return JobStatus.PENDING, None, None
    statuses = [e.status for e in elements]
    if all(s.is_finished for s in statuses):
        failed = [e for e in elements if e.status is JobStatus.FAILED]
        if failed:
            indices = ", ".join(str(e.index) for e in failed[:10])
            more = " …" if len(failed) > 10 else ""
            reason = f"{len(failed)} of {len(elements)} elements failed (indices {indices}{more})"
            return JobStatus.FAILED, failed[0].exit_code, reason
        if any(s is JobStatus.CANCELLED for s in statuses):
            return JobStatus.CANCELLED, None, "elements cancelled"
        return JobStatus.SUCCEEDED, 0, None
    if any(s is JobStatus.RUNNING or s.is_finished for s in statuses):
        return JobStatus.RUNNING, None, None
    for status in (JobStatus.SUSPENDED, JobStatus.UNKNOWN):
        if status in statuses:
            return status, None, None
    return JobStatus.PENDING, None, None
