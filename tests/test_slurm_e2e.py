"""The Slurm backend end to end, through the gateway, against a real Slurm (slurmctld,
slurmd and munge started by scripts/slurm-local).

What every backend must do is in the contract suite (tests/contract); here is what is
Slurm's own: its job id and name, walltime, dependencies, a killed worker, a restarted
controller.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus
from tests.support.records import statuses
from tests.support.shims import arguments, counting_shim
from tests.support.slurm import TIMEOUT_S, LocalSlurm, slurm_profile
from tests.support.waiting import gated, wait_for
from tests.support.workers import WorkerFactory


@pytest.fixture
def hpc_profile(tmp_path: Path) -> Path:
    return slurm_profile(tmp_path)


def test_a_job_runs_under_its_slurm_id_and_its_jobgate_name(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(hpc_profile, env=slurm.env())
    ok = gateway.submit(JobSpec(name="ok", command="echo hello from $SLURM_JOB_ID"), "hpc")
    record = ok.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code) == (JobStatus.SUCCEEDED, 0)
    assert record.backend_id is not None
    assert "".join(ok.logs()) == f"hello from {record.backend_id}\n"
    name = slurm.run("squeue", "-h", "-t", "all", "-j", record.backend_id, "-o", "%j").strip()
    assert name == f"jobgate-{ok.id}"


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


def test_above_query_all_above_each_poll_step_is_one_squeue_and_others_jobs_are_ignored(
    gateway: Gateway, slurm: LocalSlurm, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    calls = counting_shim(tmp_path / "squeue-shim", Path("/usr/bin/squeue"))
    # Chunks of 2 ids: asked by id, 4 active jobs would take 2 squeue calls per step.
    profile = slurm_profile(tmp_path, slurm={"query_all_above": 2, "query_chunk": 2})
    others = [  # in the queue all along: not jobgate's name, or not a job jobgate knows
        slurm.run("sbatch", "--parsable", "--hold", "-J", name, "-o", "/dev/null",
                  "-D", str(tmp_path), "--wrap", "true").strip()
        for name in ("not-jobgate", "jobgate-0000000000000000stranger")
    ]  # fmt: skip
    try:
        env = {**slurm.env(), "PATH": f"{calls.parent}{os.pathsep}{os.environ['PATH']}"}
        start_worker(profile, env=env)
        gate = tmp_path / "go"
        commands = ["echo 0", "echo 1", "exit 3", "echo 3"]
        jobs = [gateway.submit(JobSpec(name=f"q{i}", command=gated(c, gate)), "hpc")
                for i, c in enumerate(commands)]  # fmt: skip
        ids = [j.id for j in jobs]
        wait_for(lambda: all(r and r.backend_id for r in gateway.store.get_many(ids)),
                 timeout_s=TIMEOUT_S, what="the jobs on the scheduler")  # fmt: skip
        whole = sum("--me" in a for a in arguments(calls))
        wait_for(lambda: sum("--me" in a for a in arguments(calls)) > whole,
                 timeout_s=TIMEOUT_S, what="a poll step about all of the user's jobs")  # fmt: skip
        assert all(job.status() in (JobStatus.PENDING, JobStatus.RUNNING) for job in jobs)
        gate.touch()
        records = [job.wait(timeout_s=TIMEOUT_S) for job in jobs]
        assert [slurm.state(i) for i in others] == ["PENDING", "PENDING"]  # left alone
    finally:
        slurm.run("scancel", *others)
    assert [(r.status, r.exit_code) for r in records] == [
        (JobStatus.SUCCEEDED, 0), (JobStatus.SUCCEEDED, 0), (JobStatus.FAILED, 3),
        (JobStatus.SUCCEEDED, 0)]  # fmt: skip
    assert ["".join(j.logs()) for j in (jobs[0], jobs[3])] == ["0\n", "3\n"]
    status_calls = [a for a in arguments(calls) if "--name" not in a]  # not a submit's search
    assert len(status_calls) == gateway.scheduler_queries("hpc")  # one squeue per poll step
    asked = [a[a.index("-j") + 1].split(",") for a in status_calls if "-j" in a]
    assert all(len(chunk) <= 2 for chunk in asked)  # by id only while at most 2 were active
    assert {r.id for r in gateway.list()} == {j.id for j in jobs}  # no stranger adopted


def test_cancelling_several_jobs_in_one_call_runs_one_scancel(
    gateway: Gateway, slurm: LocalSlurm, hpc_profile: Path, start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    calls = counting_shim(tmp_path / "scancel-shim", Path("/usr/bin/scancel"))
    start_worker(hpc_profile, env={**slurm.env(),
                 "PATH": f"{calls.parent}{os.pathsep}{os.environ['PATH']}"})  # fmt: skip
    jobs = [gateway.submit(JobSpec(name=f"c{i}", command="sleep 300"), "hpc") for i in range(4)]
    wait_for(lambda: all(r and r.backend_id for r in gateway.store.get_many([j.id for j in jobs])),
             timeout_s=TIMEOUT_S, what="the jobs on Slurm")  # fmt: skip
    records = gateway.cancel([j.id for j in reversed(jobs)])
    assert [r.id for r in records] == [j.id for j in reversed(jobs)]
    assert {(r.status, r.reason) for r in records} == {(JobStatus.CANCELLED, "cancelled by user")}
    assert arguments(calls) == [sorted(r.backend_id or "" for r in records)]  # one scancel
    for record in records:
        wait_for(lambda r=record: slurm.state(r.backend_id) == "CANCELLED", timeout_s=60,
                 what="Slurm to cancel the job")  # fmt: skip
    assert [j.wait(timeout_s=TIMEOUT_S).status for j in jobs] == [JobStatus.CANCELLED] * 4
