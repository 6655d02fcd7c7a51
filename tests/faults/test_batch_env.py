"""A job's own environment must not break jobgate's wrapper on Slurm and LSF either: with
``PATH=/nonexistent`` the submit command is still found (on the worker's PATH), the
batch script's own commands still run (absolute paths), and the job runs once, ending
with its program's own exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobgate.client import JobSpec, JobStatus
from tests.support.harness import BackendHarness
from tests.support.records import statuses

pytestmark = pytest.mark.parametrize("backend", ["slurm", "lsf"], indirect=True)


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("command", "status", "exit_code"),
    [("/bin/echo ok", JobStatus.SUCCEEDED, 0), ("date", JobStatus.FAILED, 127)],
    ids=["absolute-paths-succeed", "date-fails-127"],
)
def test_a_batch_job_whose_path_is_nonexistent_runs_once_with_its_own_exit_code(
    backend: BackendHarness, tmp_path: Path, command: str, status: JobStatus, exit_code: int
) -> None:
    runs = tmp_path / "runs"
    backend.start()
    program = f'echo "$PATH" >> {runs}; {command}'
    job = backend.submit(JobSpec(name="no-path", command=program, env={"PATH": "/nonexistent"}))

    record = job.wait(timeout_s=120)

    assert record.status is status, record
    assert record.exit_code == exit_code, record
    assert runs.read_text().splitlines() == ["/nonexistent"]  # once, with the user's PATH
    assert statuses(record).count(status) == 1
    print(f"FIGURE {backend.name} PATH=/nonexistent, {command!r}: ran once, "
          f"{record.status.value} (exit {record.exit_code})")  # fmt: skip
