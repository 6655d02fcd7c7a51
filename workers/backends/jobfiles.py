"""The files a script-running job leaves beside its output, shared by the backends.

Each task's wrapper writes ``<base>.exit`` (exit code, start, end) by rename, so a
reader never sees half a record; an array job lists its indices in
``<job id>.indices``; output is ``<base>.out`` / ``<base>.err``, where ``<base>`` is
``<job id>`` or ``<job id>.<index>``.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobgate.client.errors import BackendError
from jobgate.client.models import ElementState, JobStatus
from jobgate.workers.backends.base import Backend, LogChunk, Stream


def epoch(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object the scripts wrote (always by rename, so never half-written)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if not isinstance(value, dict):
        raise BackendError(f"{path} does not hold a JSON object")
    return value


def write_indices(directory: Path, job_id: str, indices: list[int]) -> None:
    (directory / f"{job_id}.indices").write_text(json.dumps(indices), encoding="utf-8")


def read_indices(directory: Path, job_id: str) -> list[int] | None:
    """The element indices of an array job; None for a single job."""
    try:
        return [int(i) for i in json.loads((directory / f"{job_id}.indices").read_text())]
    except FileNotFoundError:
        return None


def task_base(directory: Path, job_id: str, index: int | None) -> Path:
    return directory / (job_id if index is None else f"{job_id}.{index}")


def exit_state(directory: Path, job_id: str, index: int | None) -> ElementState | None:
    """The state a task's exit record tells: SUCCEEDED, or FAILED with its exit code."""
    base = task_base(directory, job_id, index)
    record = read_json(base.with_name(f"{base.name}.exit"))
    if record is None:
        return None
    code = int(record["exit_code"])
    return ElementState(
        index=index or 0,
        status=JobStatus.SUCCEEDED if code == 0 else JobStatus.FAILED,
        exit_code=code,
        reason=None if code == 0 else f"exit code {code}",
        started_at=epoch(float(record["started"])),
        finished_at=epoch(float(record["finished"])),
    )


def read_output(
    directory: Path, job_id: str, stream: Stream, offset: int, max_bytes: int, index: int | None
) -> LogChunk:
    """Up to `max_bytes` of a task's stdout or stderr from `offset` (first element by default)."""
    indices = read_indices(directory, job_id)
    if indices is not None:
        index = indices[0] if index is None else index
        if index not in indices:
            raise BackendError(f"job {job_id} has no array index {index}")
    elif index is not None:
        raise BackendError(f"job {job_id} is not an array; do not give an index")
    base = task_base(directory, job_id, index)
    path = base.with_name(f"{base.name}.{'out' if stream == 'stdout' else 'err'}")
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(max_bytes)
    except FileNotFoundError:
        data = b""
    return LogChunk(data, offset + len(data))


class FileBackend(Backend):
    """A backend whose jobs keep their files in one directory per job: output is read
    from there, the same way for every such backend."""

    @abstractmethod
    def job_directory(self, job_id: str) -> Path:
        """The directory of the job with this jobgate id."""

    def logs(
        self,
        job_id: str,
        backend_id: str,
        stream: Stream,
        offset: int,
        max_bytes: int,
        index: int | None,
    ) -> LogChunk:
        return read_output(self.job_directory(job_id), job_id, stream, offset, max_bytes, index)
