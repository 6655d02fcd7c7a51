"""A crowd of jobs held at a gate while a fault is put in place, then checked to have run
exactly once each: the shape of the fault tests under a hundred running jobs."""

from __future__ import annotations

from pathlib import Path

from jobgate.client import JobStatus
from tests.support.harness import BackendHarness
from tests.support.records import statuses
from tests.support.waiting import gated, wait_for


class GatedCrowd:
    """`size` jobs of `backend`; each waits for the gate, then appends its id to a runs
    file and prints its number."""

    def __init__(self, backend: BackendHarness, directory: Path, size: int) -> None:
        self.gate, self.runs = directory / "go", directory / "runs"
        self.jobs = [
            backend.submit_named(f"j{i}", gated(f'echo "$JOBGATE_JOB_ID" >> {self.runs}; '
                                                f"echo {i}", self.gate, check_s=1))
            for i in range(size)
        ]  # fmt: skip
        self.ids = [job.id for job in self.jobs]
        self.gateway = backend.gateway

    def wait_on_scheduler(self) -> None:
        """Until every job has its scheduler id recorded."""
        wait_for(lambda: all(r and r.backend_id for r in self.gateway.store.get_many(self.ids)),
                 timeout_s=120, what="all jobs on the scheduler")  # fmt: skip

    def release(self) -> None:
        self.gate.touch()

    def assert_each_ran_once(self) -> None:
        """Every job SUCCEEDED once, never FAILED, with its output (checked on a sample),
        and ran exactly once."""
        for i, job in enumerate(self.jobs):
            record = job.wait(timeout_s=240)
            assert record.status is JobStatus.SUCCEEDED, record
            assert statuses(record).count(JobStatus.SUCCEEDED) == 1
            assert JobStatus.FAILED not in statuses(record)
            if i % 25 == 0:
                assert "".join(job.logs()) == f"{i}\n"
        assert sorted(self.runs.read_text().split()) == sorted(self.ids)
