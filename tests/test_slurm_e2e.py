"""The Slurm backend end to end, through the gateway, against a real Slurm (slurmctld,
slurmd and munge started by scripts/slurm-local)."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import LocalSlurm, WorkerFactory, counting_shim, wait_for
from test_gateway_e2e import gated, statuses
from test_store import make_record

from jobgate.client import Gateway, JobSpec, JobStatus
from jobgate.client.models import Observation, StatusUpdate

TIMEOUT_S = 120
INTERVAL_S = 0.5


@pytest.fixture
def hpc_profile(tmp_path: Path) -> Path:
    data: dict[str, Any] = {
        "name": "hpc",
        "backend": "slurm",
        "slurm": {"partition": "debug", "work_dir": str(tmp_path / "slurm-jobs"),
                  "accounting": "jobcomp", "command_timeout_s": 20},
        "poll_interval_min_s": INTERVAL_S,
        "poll_interval_max_s": INTERVAL_S,
        "lease_ttl_s": 5,
        "reconcile_interval_s": 1,
        "lost_grace_s": 60,
        "policy": {"warn_missing_walltime": False},
    }  # fmt: skip
    path = tmp_path / "hpc.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def slurm_state(slurm: LocalSlurm, backend_id: str | None) -> str:
    """The job's state as Slurm itself reports it."""
    assert backend_id is not None
    return slurm.run("squeue", "-h", "-t", "all", "-j", backend_id, "-o", "%T").strip()


def test_success_failure_and_output(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(hpc_profile, env=slurm.env())
    ok = gateway.submit(JobSpec(name="ok", command="echo hello from $SLURM_JOB_ID"), "hpc")
    bad = gateway.submit(JobSpec(name="bad", command="echo oops >&2; exit 3"), "hpc")
    record = ok.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code) == (JobStatus.SUCCEEDED, 0)
    assert record.backend_id is not None
    assert "".join(ok.logs()) == f"hello from {record.backend_id}\n"
    failed = bad.wait(timeout_s=TIMEOUT_S)
    assert (failed.status, failed.exit_code, failed.reason) == (
        JobStatus.FAILED, 3, "NonZeroExitCode (exit code 3)")  # fmt: skip
    assert "".join(bad.logs("stderr")) == "oops\n"
    name = slurm.run("squeue", "-h", "-t", "all", "-j", record.backend_id, "-o", "%j").strip()
    assert name == f"jobgate-{ok.id}"


def test_cancel_a_running_job(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    start_worker(hpc_profile, env=slurm.env())
    job = gateway.submit(JobSpec(name="long", command=gated("true", tmp_path / "never")), "hpc")
    wait_for(lambda: job.status() is JobStatus.RUNNING, timeout_s=TIMEOUT_S, what="running")
    record = job.cancel(timeout_s=TIMEOUT_S)
    assert (record.status, record.reason) == (JobStatus.CANCELLED, "cancelled by user")
    assert record.backend_id is not None
    wait_for(lambda: slurm_state(slurm, record.backend_id) == "CANCELLED", timeout_s=60,
             what="Slurm to cancel the job")  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(300)  # Slurm kills a 1-minute job about 80 s after it starts
def test_a_job_over_its_walltime_fails_with_timeout(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(hpc_profile, env=slurm.env())
    job = gateway.submit(
        JobSpec(name="slowpoke", command="sleep 600", resources={"walltime_s": 60}), "hpc"
    )
    record = job.wait(timeout_s=240)
    assert (record.status, record.reason) == (JobStatus.FAILED, "TIMEOUT")


def test_an_array_of_ten_runs_three_at_a_time(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(hpc_profile, env=slurm.env())
    job = gateway.submit(
        JobSpec(name="arr", command="sleep 1; echo $JOBGATE_ARRAY_INDEX", array="0-9%3"), "hpc"
    )
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert [(e.index, e.status) for e in record.elements] == [
        (i, JobStatus.SUCCEEDED) for i in range(10)]  # fmt: skip
    spans = [(e.started_at, e.finished_at) for e in record.elements]
    for start, _ in spans:
        assert sum(1 for s, f in spans if s is not None and f is not None and s <= start < f) <= 3
    for index in (0, 9):
        assert "".join(job.logs(index=index)) == f"{index}\n"


def test_dependencies_run_in_order_and_a_failed_one_fails_the_next(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    start_worker(hpc_profile, env=slurm.env())
    order = tmp_path / "order"
    first = gateway.submit(JobSpec(name="a", command=f"sleep 2; echo a >> {order}"), "hpc")
    second = gateway.submit(
        JobSpec(name="b", command=f"echo b >> {order}", depends_on=[first.id]), "hpc"
    )
    assert second.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert order.read_text() == "a\nb\n"

    broken = gateway.submit(JobSpec(name="c", command="sleep 2; exit 1"), "hpc")
    waiting = gateway.submit(JobSpec(name="d", command="true", depends_on=[broken.id]), "hpc")
    assert broken.wait(timeout_s=TIMEOUT_S).status is JobStatus.FAILED
    record = waiting.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.reason) == (JobStatus.FAILED, "dependency failed")
    assert record.backend_id is not None
    wait_for(lambda: slurm_state(slurm, record.backend_id) == "CANCELLED", timeout_s=60,
             what="Slurm to drop the job")  # fmt: skip


def test_a_hundred_jobs_finish_with_one_squeue_per_interval(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    calls = counting_shim(tmp_path / "shim", Path("/usr/bin/squeue"))
    path = f"{tmp_path / 'shim'}{os.pathsep}{os.environ['PATH']}"
    start_worker(hpc_profile, env={**slurm.env(), "PATH": path}, concurrency=4)
    began = time.monotonic()
    jobs = [gateway.submit(JobSpec(name=f"j{i}", command=f"echo {i}"), "hpc") for i in range(100)]
    for i, job in enumerate(jobs):
        assert job.wait(timeout_s=300).status is JobStatus.SUCCEEDED
        if i % 25 == 0:
            assert "".join(job.logs()) == f"{i}\n"
    elapsed = time.monotonic() - began
    squeue_calls = len(calls.read_text().split())
    intervals = elapsed / INTERVAL_S
    # one squeue per poll step, plus a few from submits that looked for their own job
    assert squeue_calls <= intervals + 10, (squeue_calls, intervals)
    assert gateway.store.query_stats("hpc")["jobs_queried"] / gateway.scheduler_queries("hpc") > 5


def test_a_killed_worker_is_replaced_and_the_job_is_tracked_to_the_end(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    first = start_worker(hpc_profile, env=slurm.env(), name="doomed")
    gate = tmp_path / "go"
    job = gateway.submit(JobSpec(name="survivor", command=gated("echo done", gate)), "hpc")
    wait_for(lambda: job.status() is JobStatus.RUNNING, timeout_s=TIMEOUT_S, what="running")
    first.kill()
    gate.touch()
    start_worker(hpc_profile, env=slurm.env(), name="successor")
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert Counter(statuses(record))[JobStatus.SUCCEEDED] == 1
    assert "".join(job.logs()) == "done\n"


def test_slurmctld_restarted_while_jobs_run_loses_nothing(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    worker = start_worker(hpc_profile, env=slurm.env())
    gate = tmp_path / "go"
    # Two jobs: the node has two CPUs, and both must be running when the controller goes.
    jobs = [gateway.submit(JobSpec(name=f"r{i}", command=gated(f"echo {i}", gate)), "hpc")
            for i in range(2)]  # fmt: skip
    for job in jobs:
        wait_for(lambda j=job: j.status() is JobStatus.RUNNING, timeout_s=TIMEOUT_S,
                 what="running")  # fmt: skip
    record = json.loads((slurm.directory / "started" / "slurmctld.json").read_text())
    os.kill(record["pid"], 15)
    wait_for(lambda: slurm.command("status").returncode != 0, timeout_s=60, what="ctld down")
    gate.touch()  # the jobs end while the controller is down
    # squeue keeps failing: once its retries are spent the poll fails, the jobs do not.
    wait_for(lambda: "poll of cluster hpc failed; the chain goes on" in worker.log_text(),
             timeout_s=180, what="a poll to fail while slurmctld is down")  # fmt: skip
    assert all(job.status() is JobStatus.RUNNING for job in jobs)
    failed_polls = gateway.store.query_stats("hpc").get("queries", 0)
    assert slurm.command("start").returncode == 0
    for i, job in enumerate(jobs):
        finished = job.wait(timeout_s=TIMEOUT_S)
        assert finished.status is JobStatus.SUCCEEDED, finished
        assert "".join(job.logs()) == f"{i}\n"
    assert gateway.store.query_stats("hpc")["queries"] > failed_polls
    counts = Counter(itertools.chain.from_iterable(statuses(j.record()) for j in jobs))
    assert counts[JobStatus.SUCCEEDED] == 2
    assert counts[JobStatus.FAILED] == 0


def test_jobs_gone_from_slurm_are_judged_from_exit_records_or_declared_lost(
    gateway: Gateway, slurm: LocalSlurm, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    """Two submitted jobs whose Slurm ids no squeue or sacct knows: one left its exit
    record (it finished while jobgate was away), one left nothing (lost after the grace)."""
    data: dict[str, Any] = {
        "name": "hpc", "backend": "slurm",
        "slurm": {"partition": "debug", "work_dir": str(tmp_path / "jobs"),
                  "accounting": "jobcomp"},
        "poll_interval_min_s": INTERVAL_S, "poll_interval_max_s": INTERVAL_S,
        "lease_ttl_s": 5, "reconcile_interval_s": 1, "lost_grace_s": 2,
    }  # fmt: skip
    path = tmp_path / "lost.yaml"
    path.write_text(yaml.safe_dump(data))
    finished = make_record(gateway.store, cluster="hpc")
    vanished = make_record(gateway.store, cluster="hpc")
    for record, slurm_id in ((finished, "999991"), (vanished, "999992")):
        gateway.store.transition(
            StatusUpdate(record.id, Observation(JobStatus.RUNNING), backend_id=slurm_id),
            observed_at=time.time(), retention_s=3600,
        )  # fmt: skip
    job_dir = tmp_path / "jobs" / finished.id
    job_dir.mkdir(parents=True)
    (job_dir / f"{finished.id}.exit").write_text('{"exit_code": 0, "started": 1, "finished": 2}')

    start_worker(path, env=slurm.env())  # reconcile restarts polling of the active jobs
    done = gateway.job(finished.id).wait(timeout_s=TIMEOUT_S)
    assert (done.status, done.exit_code) == (JobStatus.SUCCEEDED, 0)
    lost = gateway.job(vanished.id).wait(timeout_s=TIMEOUT_S)
    assert lost.status is JobStatus.FAILED
    assert lost.reason == "lost: not in squeue or sacct, and no exit record"
    assert statuses(lost)[-2:] == [JobStatus.UNKNOWN, JobStatus.FAILED]
