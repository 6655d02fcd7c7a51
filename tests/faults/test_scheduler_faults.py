"""Scheduler commands that misbehave under running jobs: a status command that hangs, that
prints half its answer and exits 1, that mixes a line of garbage into a valid answer, or
that vanishes from PATH. The fault is a shim on the worker's PATH in front of the real
command (tests/support/shims.py). Each test asserts that the hung command is killed, the
failed poll is logged naming the command and the cluster, no running job is marked
FAILED, every job runs once and ends SUCCEEDED, and the polling chain resumes.

Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from jobgate.client import Job, JobStatus
from scripts import devstack
from tests.support.batch import BatchHarness
from tests.support.lsf import EMULATOR, LsfEmulator, LsfHarness
from tests.support.records import statuses
from tests.support.shims import Fault, arm, count, counting_shim, hung_pids
from tests.support.slurm import SlurmHarness
from tests.support.waiting import gated, wait_for

#: The private Slurm has two CPUs: two one-CPU jobs run side by side.
JOBS = 2
#: Short enough that a hung command costs the test seconds, long enough for a busy squeue.
COMMAND_TIMEOUT_S = 3
#: Tries of a submit that keeps failing transiently: the first and the task's 5 retries.
SUBMIT_TRIES = 6


def _start(backend: BatchHarness, scheduler: str) -> devstack.Worker:
    """A worker whose scheduler commands time out after COMMAND_TIMEOUT_S."""
    profile = backend.profile(**{scheduler: {"command_timeout_s": COMMAND_TIMEOUT_S}})
    return backend.start_worker(profile, env=backend.worker_env())


def _start_running(backend: BatchHarness, tmp_path: Path) -> list[Job]:
    """JOBS gated jobs, seen RUNNING; each appends its id to `runs` when let go."""
    gate, runs = tmp_path / "go", tmp_path / "runs"
    jobs = [backend.submit_named(f"j{i}", gated(f'echo "$JOBGATE_JOB_ID" >> {runs}', gate))
            for i in range(JOBS)]  # fmt: skip
    wait_for(lambda: all(job.status() is JobStatus.RUNNING for job in jobs),
             timeout_s=backend.timeout_s, what="the jobs running")  # fmt: skip
    return jobs


def _let_go_and_wait_until_ran(jobs: list[Job], tmp_path: Path) -> None:
    """Open the gate; wait until every job has run (on the scheduler, not in jobgate)."""
    (tmp_path / "go").touch()
    runs = tmp_path / "runs"
    wait_for(lambda: runs.exists() and len(runs.read_text().split()) == len(jobs),
             timeout_s=60, what="the jobs to run on the scheduler")  # fmt: skip


def _assert_each_succeeded_once(backend: BatchHarness, jobs: list[Job], tmp_path: Path) -> None:
    for job in jobs:
        record = job.wait(timeout_s=backend.timeout_s)
        assert record.status is JobStatus.SUCCEEDED, record
        assert JobStatus.FAILED not in statuses(record), record
        assert JobStatus.UNKNOWN not in statuses(record), record
        assert statuses(record).count(JobStatus.RUNNING) <= 1, record
    assert sorted((tmp_path / "runs").read_text().split()) == sorted(j.id for j in jobs)


def _poll_failures(worker: devstack.Worker, cluster: str, said: str) -> list[str]:
    """The worker's log lines saying a poll of `cluster` failed with `said` in the reason."""
    failed = f"poll of cluster {cluster} failed; the chain goes on"
    return [line for line in worker.log_text().splitlines() if failed in line and said in line]


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("scheduler", "fault", "said"),
    [
        ("slurm", Fault.HANG, f"squeue did not answer within {COMMAND_TIMEOUT_S} s (killed)"),
        ("slurm", Fault.PARTIAL, "squeue failed (exit 1)"),
        ("lsf", Fault.HANG, f"bjobs did not answer within {COMMAND_TIMEOUT_S} s (killed)"),
        ("lsf", Fault.PARTIAL, "bjobs -json printed what jobgate cannot read"),
        ("lsf", Fault.GARBAGE, "bjobs -json printed what jobgate cannot read"),
    ],
    ids=["slurm-hangs", "slurm-half-answer-exit-1", "lsf-hangs", "lsf-half-answer-exit-1",
         "lsf-garbage-in-json"],
)  # fmt: skip
def test_a_status_command_failing_under_running_jobs_fails_no_job_and_the_chain_resumes(
    request: pytest.FixtureRequest, tmp_path: Path, scheduler: str, fault: Fault, said: str
) -> None:
    backend: BatchHarness = request.getfixturevalue(f"{scheduler}_backend")
    worker = _start(backend, scheduler)
    jobs = _start_running(backend, tmp_path)

    arm(backend.status_calls_file, fault)
    armed = time.monotonic()
    (line,) = wait_for(lambda: _poll_failures(worker, backend.cluster, said)[:1],
                       timeout_s=60, what="a logged poll failure")  # fmt: skip
    logged_s = time.monotonic() - armed
    assert "gave up after 3 attempts" in line or fault is not Fault.HANG, line
    hung = hung_pids(backend.status_calls_file)
    assert bool(hung) is (fault is Fault.HANG)
    wait_for(lambda: all(_gone(pid) for pid in hung), timeout_s=10, what="hung command killed")
    _let_go_and_wait_until_ran(jobs, tmp_path)  # the jobs end while the command fails
    wait_for(lambda: len(_poll_failures(worker, backend.cluster, said)) >= 2, timeout_s=60,
             what="a second failed poll after the jobs ended")  # fmt: skip
    assert all(job.status() is JobStatus.RUNNING for job in jobs)  # nothing judged meanwhile

    queries_in_fault = backend.gateway.scheduler_queries(backend.cluster)  # none succeed
    arm(backend.status_calls_file, None)
    cleared = time.monotonic()
    _assert_each_succeeded_once(backend, jobs, tmp_path)
    assert backend.gateway.scheduler_queries(backend.cluster) > queries_in_fault  # resumed
    assert worker.running()
    # A step held up by the hung command kept its lease: no second chain was started.
    assert "no polling chain; started one" not in worker.log_text()
    print(f"FIGURE scheduler-fault {scheduler} status-command-{fault}: {JOBS} running jobs, "
          f"0 failed, {len(hung)} hung commands killed, failure logged {logged_s:.1f} s after "
          f"the fault, jobs done {time.monotonic() - cleared:.1f} s after it cleared")  # fmt: skip


@pytest.mark.timeout(180)
def test_lsf_commands_gone_from_path_mid_run_fail_no_job_and_a_submit_waits_for_them(
    lsf_backend: LsfHarness, lsf: LsfEmulator, tmp_path: Path
) -> None:
    backend, commands = lsf_backend, tmp_path / "lsf-bin"
    commands.mkdir()
    for command in (EMULATOR / "bin").iterdir():
        (commands / command.name).symlink_to(command)
    env = lsf.env(PATH=os.pathsep.join([str(commands), os.environ["PATH"]]))
    profile = backend.profile(lsf={"command_timeout_s": COMMAND_TIMEOUT_S},
                              submit_retry_backoff_s=1)  # fmt: skip
    worker = backend.start_worker(profile, env=env)
    jobs = _start_running(backend, tmp_path)

    away = commands.rename(tmp_path / "lsf-bin.away")  # bsub, bjobs, bkill, bhist: gone
    said = "bjobs is not installed or not on PATH"
    wait_for(lambda: _poll_failures(worker, backend.cluster, said), what="a logged poll failure")
    late = backend.submit_named("late", f'echo "$JOBGATE_JOB_ID" >> {tmp_path / "runs"}')
    retrying = f"submit of job {late.id} failed, will retry: bsub is not installed or not on PATH"
    wait_for(lambda: retrying in worker.log_text(), what="the submit to be retried")
    assert late.status() is JobStatus.NEW
    _let_go_and_wait_until_ran(jobs, tmp_path)
    assert all(job.status() is JobStatus.RUNNING for job in jobs)  # nothing judged meanwhile

    away.rename(commands)
    _assert_each_succeeded_once(backend, [*jobs, late], tmp_path)
    retries = worker.log_text().count(f"submit of job {late.id} failed, will retry")
    print(f"FIGURE scheduler-fault lsf commands-gone-from-path: {JOBS} running jobs, 0 failed; "
          f"a submit meanwhile retried {retries} times, then ran once")  # fmt: skip


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("scheduler", "fault"), [("slurm", Fault.GARBAGE), ("lsf", Fault.NOISE)],
    ids=["squeue-garbage-line", "bjobs-noise-around-json"],
)  # fmt: skip
def test_a_garbage_line_in_status_answers_does_not_hold_up_the_jobs(
    request: pytest.FixtureRequest, tmp_path: Path, scheduler: str, fault: Fault
) -> None:
    backend: BatchHarness = request.getfixturevalue(f"{scheduler}_backend")
    worker = _start(backend, scheduler)
    jobs = _start_running(backend, tmp_path)

    arm(backend.status_calls_file, fault)  # stays armed to the end
    calls_at_arm = count(backend.status_calls_file)
    _let_go_and_wait_until_ran(jobs, tmp_path)
    _assert_each_succeeded_once(backend, jobs, tmp_path)
    assert count(backend.status_calls_file) > calls_at_arm  # answers were garbled
    command = "squeue" if scheduler == "slurm" else "bjobs"
    said = f"cluster {backend.cluster}: {command} printed a line jobgate cannot read"
    skipped = [line for line in worker.log_text().splitlines() if said in line]
    assert skipped, worker.log_text()[-3000:]
    assert "slurm_load_jobs: ??" in skipped[0], skipped[0]
    print(f"FIGURE scheduler-fault {scheduler} {fault}: {JOBS} jobs, 0 failed, "
          f"{len(skipped)} garbled answers used, their noise skipped")  # fmt: skip


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", [Fault.HANG, Fault.ANSWER_LOST], ids=["hangs", "answer-lost"])
def test_an_sbatch_that_never_answers_is_killed_and_the_job_is_submitted_at_most_once(
    slurm_backend: SlurmHarness, tmp_path: Path, fault: Fault
) -> None:
    """A hung sbatch is killed at the timeout and the submit retried, a bounded number of
    times: then the job is FAILED with the reason. An sbatch that submitted the job but
    whose answer was lost leaves a job that the retry finds by its name: adopted, run once."""
    backend, runs = slurm_backend, tmp_path / "runs"
    calls = counting_shim(tmp_path / "sbatch-shim", Path("/usr/bin/sbatch"))
    arm(calls, fault)
    env = backend.worker_env()
    env["PATH"] = os.pathsep.join([str(calls.parent), env["PATH"]])
    profile = backend.profile(slurm={"command_timeout_s": COMMAND_TIMEOUT_S},
                              submit_retry_backoff_s=0.2)  # fmt: skip
    worker = backend.start_worker(profile, env=env)
    started = time.monotonic()
    job = backend.submit_named("j", f'echo "$JOBGATE_JOB_ID" >> {runs}')

    record = job.wait(timeout_s=backend.timeout_s)
    hung = hung_pids(calls)
    wait_for(lambda: all(_gone(pid) for pid in hung), timeout_s=10, what="hung sbatch killed")
    on_slurm = backend.slurm.run("squeue", "-h", "-t", "all", "--name", f"jobgate-{job.id}",
                                 "-o", "%i").split()  # fmt: skip
    if fault is Fault.HANG:
        assert record.status is JobStatus.FAILED, record
        assert statuses(record) == [JobStatus.NEW, JobStatus.FAILED]
        killed = f"sbatch did not answer within {COMMAND_TIMEOUT_S} s (killed)"
        assert record.reason == f"submit failed: {killed} (gave up after 1 attempts)"
        assert len(hung) == count(calls) == SUBMIT_TRIES
        assert on_slurm == []
        assert not runs.exists()
    else:
        assert record.status is JobStatus.SUCCEEDED, record
        assert record.history[1].reason == "found on the cluster"
        assert len(hung) == count(calls) == 1
        assert on_slurm == [record.backend_id]
        assert runs.read_text().split() == [job.id]
    assert f"submit of job {job.id} failed, will retry: sbatch did not answer" in worker.log_text()
    print(f"FIGURE scheduler-fault slurm sbatch-{fault}: {len(hung)} hung sbatch killed, job "
          f"{record.status.value} after {time.monotonic() - started:.1f} s")  # fmt: skip
