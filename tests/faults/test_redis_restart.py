"""Redis restarts under running jobs: a worker holding the polling chain's countdown tasks
stays up and reconnects, nothing recorded is lost, no job runs twice, the chain resumes.

Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jobgate.client import JobNotFoundError, JobSpec, JobStatus
from scripts import devstack
from tests.support.crowd import GatedCrowd
from tests.support.harness import BackendHarness
from tests.support.waiting import gated, wait_for
from tests.support.worker_logs import log_times, reconnect_s

JOBS = 100


pytestmark = pytest.mark.parametrize("backend", ["local", "slurm"], indirect=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("own_redis", "crash"),
    [("everysec", False), ("always", True)],
    ids=["aof-everysec-restarted", "aof-always-crashed"],
    indirect=["own_redis"],
)
def test_a_redis_restart_under_a_hundred_running_jobs_loses_and_repeats_nothing(
    backend: BackendHarness, own_redis: devstack.RedisServer, crash: bool, tmp_path: Path
) -> None:
    worker = backend.start(concurrency=4, **backend.crowd_settings)
    gateway, crowd = backend.gateway, GatedCrowd(backend, tmp_path, JOBS)
    crowd.wait_on_scheduler()
    queries_before = gateway.scheduler_queries(backend.cluster)

    own_redis.restart(crash=crash)
    crowd.release()

    crowd.assert_each_ran_once()
    assert worker.running()  # the same worker, never restarted
    assert gateway.scheduler_queries(backend.cluster) > queries_before  # the chain resumed
    print(f"FIGURE redis-restart {backend.name} crash={crash}: {JOBS} jobs, 0 lost, "
          f"0 duplicated, reconnected in {reconnect_s(worker):.1f} s")  # fmt: skip


@pytest.mark.parametrize("own_redis", ["none"], indirect=True)
def test_a_redis_that_lost_its_data_leaves_the_worker_serving_and_says_what_is_gone(
    backend: BackendHarness, own_redis: devstack.RedisServer, tmp_path: Path
) -> None:
    worker = backend.start()
    gate = tmp_path / "go"
    before = backend.submit_named("before", gated("echo before", gate))
    wait_for(lambda: before.status() is JobStatus.RUNNING, timeout_s=backend.timeout_s,
             what="a job running")  # fmt: skip

    own_redis.restart()  # nothing persisted: every record, queue and result is gone
    gate.touch()

    with pytest.raises(JobNotFoundError, match=f"no job {before.id}"):
        before.record()
    wait_for(lambda: log_times(worker.log_text(), "Connected to ")[1:], timeout_s=60,
             what="the worker to reconnect")  # fmt: skip
    started = time.monotonic()
    after = wait_for(lambda: _submitted_once_served(backend), timeout_s=120,
                     what="the worker to serve a new job")  # fmt: skip
    assert after.wait(timeout_s=backend.timeout_s).status is JobStatus.SUCCEEDED
    assert "".join(after.logs()) == "after\n"
    assert worker.running()
    print(f"FIGURE redis-data-lost {backend.name}: worker up, new job done "
          f"{time.monotonic() - started:.1f} s after the restart")  # fmt: skip


def _submitted_once_served(backend: BackendHarness) -> object:
    """A job submitted once the restarted Redis shows a live worker again (its heartbeat
    comes back within one period), so that the submit is not refused as unserved."""
    if backend.cluster not in backend.gateway.clusters():
        return None
    return backend.submit(JobSpec(name="after", command="echo after"))
