"""The state directory: a job-id counter and one JSON file per job.

Layout of ``$LSF_EMULATOR_DIR``::

    counter            last job id handed out (under counter.lock)
    jobs/<id>.json     one job, replaced whole by rename (never half-written)
    jobs/<id>.lock     taken around every read-modify-write of that job
    jobs/<id>.sh       the job file the runner executes
    faults.json        optional fault switches a test writes (see faults.py)

Readers need no lock: a job file is always either the old or the new version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .model import Job


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on ``path`` (created if missing)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file, then a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    with path.open() as handle:
        return json.load(handle)


class Store:
    """Jobs in one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.jobs_dir = root / "jobs"

    def next_job_id(self) -> int:
        """Hand out the next job id: 1, 2, 3, ... across all processes."""
        counter = self.root / "counter"
        with locked(self.root / "counter.lock"):
            try:
                last = int(counter.read_text().strip() or 0)
            except FileNotFoundError:
                last = 0
            tmp = counter.with_name(".counter.tmp")
            tmp.write_text(f"{last + 1}\n")
            os.replace(tmp, counter)
        return last + 1

    def job_path(self, jobid: int) -> Path:
        return self.jobs_dir / f"{jobid}.json"

    def script_path(self, jobid: int) -> Path:
        return self.jobs_dir / f"{jobid}.sh"

    def load(self, jobid: int) -> Job | None:
        try:
            return Job.from_dict(read_json(self.job_path(jobid)))
        except FileNotFoundError:
            return None

    def _load_raw(self, jobid: int) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = read_json(self.job_path(jobid))
        except FileNotFoundError:
            return None
        return data

    def save(self, job: Job) -> None:
        write_json(self.job_path(job.jobid), job.to_dict())

    @contextlib.contextmanager
    def update(self, jobid: int) -> Iterator[Job]:
        """Read a job under its lock and write it back when the block ends without error."""
        with locked(self.jobs_dir / f"{jobid}.lock"):
            before = self._load_raw(jobid)
            if before is None:
                raise KeyError(jobid)
            job = Job.from_dict(before)
            yield job
            after = job.to_dict()
            if after != before:
                write_json(self.job_path(jobid), after)

    def job_ids(self) -> list[int]:
        ids = []
        for path in self.jobs_dir.glob("*.json"):
            with contextlib.suppress(ValueError):
                ids.append(int(path.stem))
        return sorted(ids)

    def all_jobs(self) -> list[Job]:
        jobs = []
        for jobid in self.job_ids():
            job = self.load(jobid)
            if job is not None:
                jobs.append(job)
        return jobs
