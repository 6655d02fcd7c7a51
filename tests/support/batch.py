"""What the Slurm and LSF harnesses share: a job directory per job (the exit records its
wrapper writes), a counting shim for the status command, and how jobs vanish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from tests.support.harness import BackendHarness, Vanished
from tests.support.records import plant_submitted
from tests.support.shims import count, counting_shim


def write_exit_record(work_dir: Path, job_id: str, exit_code: int = 0) -> None:
    """The exit record a batch job's wrapper writes when its program ends (exit code,
    start and end times), as if the job had run and ended while no worker watched."""
    job_dir = work_dir / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    record = {"exit_code": exit_code, "started": 1, "finished": 2}
    (job_dir / f"{job_id}.exit").write_text(json.dumps(record))


class BatchHarness(BackendHarness):
    """A scheduler driven by commands: its status command counted by a shim on PATH."""

    #: The profile's work_dir, under the test's tmp_path.
    jobs_dir: ClassVar[str]

    def __init__(self, status_command: Path, **common: Any) -> None:
        super().__init__(**common)
        self.status_calls_file = counting_shim(self.tmp_path / "shim", status_command)

    @property
    def shim_dir(self) -> Path:
        """The directory to put first on the worker's PATH."""
        return self.status_calls_file.parent

    def vanished(self) -> Vanished:
        """Two running jobs under ids the scheduler never knew: one left its exit record
        (it ended while jobgate was away), one left nothing."""
        store = self.gateway.store
        finished = plant_submitted(store, self.cluster, "999991")
        lost = plant_submitted(store, self.cluster, "999992")
        write_exit_record(self.tmp_path / self.jobs_dir, finished.id)
        self.start(lost_grace_s=2)  # reconcile restarts polling of the active jobs
        return Vanished(lost=self.gateway.job(lost.id), exit_recorded=self.gateway.job(finished.id))

    def status_calls(self) -> int:
        return count(self.status_calls_file)
