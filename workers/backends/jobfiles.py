"""The files a script-running job leaves beside its output, shared by the backends.

Each task's wrapper writes ``<base>.exit`` (exit code, start, end) by rename, so a
reader never sees half a record; an array job lists its indices in
``<job id>.indices``; output is ``<base>.out`` / ``<base>.err``, where ``<base>`` is
``<job id>`` or ``<job id>.<index>``.

A record can still be unreadable: on a full file system the wrapper's write fails and
the rename leaves an empty file. Such a record tells about its own job alone, so it
fails that job (`UnreadableRecordError`, and `failed_if_unreadable` in each backend's
query) and never the cluster's whole query.
"""

from __future__ import annotations

import json
import shlex
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from jobgate.client.errors import BackendError
from jobgate.client.models import ElementState, JobStatus, Observation
from jobgate.workers.backends.base import Backend, LogChunk, LogRange, ProfileT
from jobgate.workers.backends.programs import ARRAY_INDEX_ENV


@dataclass(frozen=True)
class JobFiles:
    """Where one batch job's files are: ``<work_dir>/<jobgate id>/``, a directory the
    compute nodes can see. Subclasses name the scheduler's own two files."""

    directory: Path
    job_id: str
    script_suffix: ClassVar[str] = "sh"
    backend_id_suffix: ClassVar[str] = "backend-id"

    @property
    def script(self) -> Path:
        """The batch script, kept for debugging."""
        return self.directory / f"{self.job_id}.{self.script_suffix}"

    @property
    def program(self) -> Path:
        return self.directory / f"{self.job_id}.program"

    @property
    def backend_id(self) -> Path:
        """Where the scheduler's job id is kept once the submit command has answered."""
        return self.directory / f"{self.job_id}.{self.backend_id_suffix}"

    def base(self, index: int | None = None) -> Path:
        return task_base(self.directory, self.job_id, index)

    def output(self, stream: str, index: int | None = None) -> Path:
        return self.base(index).with_name(f"{self.base(index).name}.{stream}")

    def exit_record(self, index: int | None = None) -> Path:
        return self.base(index).with_name(f"{self.base(index).name}.exit")

    def save_backend_id(self, backend_id: str) -> None:
        partial = self.backend_id.with_suffix(".tmp")
        partial.write_text(backend_id, encoding="utf-8")
        partial.rename(self.backend_id)

    def saved_backend_id(self) -> str | None:
        try:
            return self.backend_id.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None


def wrapper_lines(files: JobFiles, index_variable: str | None, *, redirect: bool) -> list[str]:
    """Shell lines that run the program once and record its exit code and times beside its
    output, by rename. `index_variable` names the scheduler's array index variable (arrays
    only); with `redirect`, the program's stdout/stderr go to jobgate's own files (when the
    scheduler's output file also gets the scheduler's job report)."""
    lines = ["# jobgate: run the program, then record its exit code and times.",
             f"base={shlex.quote(str(files.base()))}"]  # fmt: skip
    if index_variable:
        lines += [
            f'base="$base.${index_variable}"',
            f"{ARRAY_INDEX_ENV}=${index_variable}",
            f"export {ARRAY_INDEX_ENV}",
        ]
    program = shlex.quote(str(files.program))
    if redirect:
        program += ' > "$base.out" 2> "$base.err"'
    # The job's own environment (a PATH of its own) must not break these lines: their
    # commands go by absolute path, and any failure of theirs stops the script rather
    # than leave a record that lies. An exit record that cannot be written (a full file
    # system) is still renamed into place, empty: the worker reads why the job failed.
    return [
        "set -eu",
        *lines,
        "start=$(/bin/date +%s.%N)",
        "code=0",
        f"{program} || code=$?",
        "end=$(/bin/date +%s.%N)",
        'printf \'{"exit_code": %d, "started": %s, "finished": %s}\\n\' '
        '"$code" "$start" "$end" > "$base.exit.tmp" || :',
        '/bin/mv "$base.exit.tmp" "$base.exit"',
        'exit "$code"',
    ]


def batch_script(
    directive: str, options: list[str], files: JobFiles, index_variable: str | None, *,
    redirect: bool,
) -> str:  # fmt: skip
    """A batch script: ``#!/bin/sh``, one ``<directive> <option>`` line per option (e.g.
    ``#SBATCH --mem=100M``), then the wrapper (see `wrapper_lines`)."""
    lines = ["#!/bin/sh", *(f"{directive} {option}" for option in options)]
    return "\n".join([*lines, *wrapper_lines(files, index_variable, redirect=redirect)]) + "\n"


def epoch(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


class UnreadableRecordError(BackendError):
    """A file a job's scripts wrote holds no valid record: that job's outcome cannot be
    known. The message names the file and says what is wrong with it."""

    def __init__(self, what: str, path: Path, why: str) -> None:
        super().__init__(f"{what} {path} is unreadable: {why}")


class ExitRecord(BaseModel):
    """What a task's wrapper writes when its program ends (`wrapper_lines`, task.sh)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    exit_code: int
    started: float
    finished: float


RecordT = TypeVar("RecordT", bound=BaseModel)


def read_record(path: Path, model: type[RecordT], what: str) -> RecordT | None:
    """The record in `path` (None if there is none yet); `UnreadableRecordError` if it is
    empty, not JSON, or not what `model` says. Other errors reading it (an I/O error, a
    file system gone) are the host's, not the job's, and propagate."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if not raw:
        raise UnreadableRecordError(what, path, "it is empty (was its file system full?)")
    try:
        return model.model_validate_json(raw)
    except ValidationError as e:
        why = "; ".join(
            ".".join(map(str, err["loc"])) + ": " + err["msg"] if err["loc"] else err["msg"]
            for err in e.errors()
        )
        raise UnreadableRecordError(what, path, why) from e


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object the scripts wrote (by rename, so never half-written; but empty when
    the file system was full)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as e:  # not UTF-8, or not JSON
        raise UnreadableRecordError("record", path, str(e)) from e
    if not isinstance(value, dict):
        raise UnreadableRecordError("record", path, "it does not hold a JSON object")
    return value


def write_indices(directory: Path, job_id: str, indices: list[int]) -> None:
    (directory / f"{job_id}.indices").write_text(json.dumps(indices), encoding="utf-8")


def read_indices(directory: Path, job_id: str) -> list[int] | None:
    """The element indices of an array job; None for a single job."""
    path = directory / f"{job_id}.indices"
    try:
        return [int(i) for i in json.loads(path.read_text(encoding="utf-8"))]
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        raise UnreadableRecordError("array index record", path, str(e)) from e


def failed_if_unreadable(observe: Callable[[], Observation]) -> Observation:
    """`observe()`, the state of one job from the scheduler and its files; FAILED with the
    reason if one of its records is unreadable, so that the cluster's other jobs are
    still observed."""
    try:
        return observe()
    except UnreadableRecordError as e:
        return Observation(JobStatus.FAILED, reason=str(e))


def task_base(directory: Path, job_id: str, index: int | None) -> Path:
    return directory / (job_id if index is None else f"{job_id}.{index}")


def exit_state(directory: Path, job_id: str, index: int | None) -> ElementState | None:
    """The state a task's exit record tells: SUCCEEDED, or FAILED with its exit code, or
    FAILED for a record that cannot be read (the task ended, but how is not known; it
    ended when the record was written)."""
    base = task_base(directory, job_id, index)
    path = base.with_name(f"{base.name}.exit")
    try:
        record = read_record(path, ExitRecord, "exit record")
    except UnreadableRecordError as e:
        ended = epoch(path.stat().st_mtime)
        return ElementState(
            index=index or 0, status=JobStatus.FAILED, reason=str(e), finished_at=ended
        )
    if record is None:
        return None
    code = record.exit_code
    return ElementState(
        index=index or 0,
        status=JobStatus.SUCCEEDED if code == 0 else JobStatus.FAILED,
        exit_code=code,
        reason=None if code == 0 else f"exit code {code}",
        started_at=epoch(record.started),
        finished_at=epoch(record.finished),
    )


def read_output(directory: Path, job_id: str, wanted: LogRange) -> LogChunk:
    """What `wanted` asks of a task's stdout or stderr (an array's first element by default)."""
    index, offset = wanted.index, wanted.offset
    indices = read_indices(directory, job_id)
    if indices is not None:
        index = indices[0] if index is None else index
        if index not in indices:
            raise BackendError(f"job {job_id} has no array index {index}")
    elif index is not None:
        raise BackendError(f"job {job_id} is not an array; do not give an index")
    base = task_base(directory, job_id, index)
    path = base.with_name(f"{base.name}.{'out' if wanted.stream == 'stdout' else 'err'}")
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(wanted.max_bytes)
    except FileNotFoundError:
        data = b""
    return LogChunk(data, offset + len(data))


class FileBackend(Backend[ProfileT]):
    """A backend whose jobs keep their files in one directory per job: output is read
    from there, the same way for every such backend. The job's own files (inputs,
    outputs) share that directory with jobgate's, which are named after the job id or
    listed in `own_files`."""

    own_files: ClassVar[frozenset[str]] = frozenset()

    def is_own_file(self, job_id: str, path: str) -> bool:
        """Whether a path in the job's directory is one of jobgate's files."""
        top = path.split("/", 1)[0]
        return top.startswith(f"{job_id}.") or top in self.own_files

    @abstractmethod
    def job_directory(self, job_id: str) -> Path:
        """The directory of the job with this jobgate id."""

    def logs(self, job_id: str, backend_id: str, wanted: LogRange) -> LogChunk:
        return read_output(self.job_directory(job_id), job_id, wanted)
