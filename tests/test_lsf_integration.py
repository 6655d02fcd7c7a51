"""The LSF backend against a real LSF cluster, for those who have one.

Runs only with ``JOBGATE_LSF_INTEGRATION=1`` and ``bsub`` on PATH, from a login
node, as a user who may submit. Optional settings:

- ``JOBGATE_LSF_QUEUE``: the queue (else LSF's default queue);
- ``JOBGATE_LSF_PROJECT``: bsub -P;
- ``JOBGATE_LSF_UNITS``: the cluster's LSF_UNIT_FOR_LIMITS (default MB);
- ``JOBGATE_LSF_WORK_DIR``: a directory the compute nodes see (default: a new
  directory under ``$HOME/.local/state/jobgate/lsf-integration``);
- ``JOBGATE_LSF_TIMEOUT_S``: how long a job may take, queue wait included (1800).

The tests submit four small jobs and one array of three, and cancel one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus
from tests.support.profiles import write_profile
from tests.support.waiting import wait_for
from tests.support.workers import WorkerFactory

TIMEOUT_S = float(os.environ.get("JOBGATE_LSF_TIMEOUT_S", "1800"))

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("JOBGATE_LSF_INTEGRATION") != "1" or shutil.which("bsub") is None,
        reason="needs a real LSF: JOBGATE_LSF_INTEGRATION=1 and bsub on PATH",
    ),
    pytest.mark.timeout(TIMEOUT_S + 120),
]


@pytest.fixture
def lsf_profile(tmp_path: Path) -> Path:
    work_dir = os.environ.get("JOBGATE_LSF_WORK_DIR")
    if work_dir is None:
        base = Path.home() / ".local" / "state" / "jobgate" / "lsf-integration"
        base.mkdir(parents=True, exist_ok=True)
        work_dir = tempfile.mkdtemp(dir=base)
    settings: dict[str, Any] = {"work_dir": work_dir,
                                "lsf_units": os.environ.get("JOBGATE_LSF_UNITS", "MB")}  # fmt: skip
    if queue := os.environ.get("JOBGATE_LSF_QUEUE"):
        settings["queue"] = queue
    if project := os.environ.get("JOBGATE_LSF_PROJECT"):
        settings["project"] = project
    data = {
        "name": "realsf",
        "backend": "lsf",
        "lsf": settings,
        "defaults": {"resources": {"memory_mb": 256, "walltime_s": 600}},
        "poll_interval_min_s": 5,
        "poll_interval_max_s": 15,
        "lost_grace_s": 900,
    }
    return write_profile(tmp_path, data)


def test_submit_and_fail_on_real_lsf(
    gateway: Gateway, lsf_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile)
    ok = gateway.submit(JobSpec(name="ok", command="echo hello from $LSB_JOBID"), "realsf")
    bad = gateway.submit(JobSpec(name="bad", command="exit 3"), "realsf")
    record = ok.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code) == (JobStatus.SUCCEEDED, 0)
    assert "".join(ok.logs()) == f"hello from {record.backend_id}\n"
    failed = bad.wait(timeout_s=TIMEOUT_S)
    assert (failed.status, failed.exit_code) == (JobStatus.FAILED, 3)


def test_cancel_on_real_lsf(
    gateway: Gateway, lsf_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile)
    job = gateway.submit(JobSpec(name="long", command="sleep 3000"), "realsf")
    wait_for(lambda: job.record(fresh=True).backend_id, timeout_s=TIMEOUT_S, what="an LSF id")
    record = job.cancel(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.CANCELLED


def test_array_on_real_lsf(
    gateway: Gateway, lsf_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile)
    job = gateway.submit(
        JobSpec(name="arr", command="echo $JOBGATE_ARRAY_INDEX", array="1-3%2"), "realsf"
    )
    record = job.wait(timeout_s=TIMEOUT_S)
    assert [(e.index, e.status) for e in record.elements] == [
        (i, JobStatus.SUCCEEDED) for i in (1, 2, 3)]  # fmt: skip
    assert "".join(job.logs(index=3)) == "3\n"
