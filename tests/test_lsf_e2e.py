"""The LSF backend end to end, through the gateway and a real worker, against the LSF
emulator (tests/emulators/lsf: bsub, bjobs, bkill, bhist first on PATH, running jobs
as local processes and printing what IBM documents LSF prints).

What every backend must do is in the contract suite (tests/contract); here is what is
LSF's own: its job id and name, env_mode, limits, index 0, dependencies, jobs purged
from bjobs, ZOMBI jobs, a daemon that does not answer or hangs.
"""

from __future__ import annotations

import os
from pathlib import Path

from jobgate.client import Gateway, JobSpec, JobStatus
from jobgate.client.profiles import load_profile
from jobgate.workers.backends.lsf.script import parse_submitted
from tests.support.lsf import EMULATOR, LsfEmulator, lsf_profile
from tests.support.records import statuses
from tests.support.shims import arguments, counting_shim
from tests.support.waiting import TIMEOUT_S, gated, wait_for
from tests.support.workers import WorkerFactory


def test_a_job_runs_under_its_lsf_id_and_name_and_a_failed_one_is_exit_on_lsf(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    ok = gateway.submit(JobSpec(name="ok", command="echo hello from $LSB_JOBID"), "lsfc")
    bad = gateway.submit(JobSpec(name="bad", command="exit 3"), "lsfc")
    record = ok.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code) == (JobStatus.SUCCEEDED, 0)
    assert "".join(ok.logs()) == f"hello from {record.backend_id}\n"
    assert lsf.record(record.backend_id)["JOB_NAME"] == f"jobgate-{ok.id}"
    failed = bad.wait(timeout_s=TIMEOUT_S)
    assert failed.status is JobStatus.FAILED
    assert lsf.record(failed.backend_id)["STAT"] == "EXIT"


def test_env_none_gives_the_job_only_its_own_variables(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path, lsf={"env_mode": "none"}), env=lsf.env(WORKER_ONLY="1"))
    job = gateway.submit(
        JobSpec(name="env", command='echo "$GREETING ${WORKER_ONLY:-unset} $JOBGATE_JOB_ID"',
                env={"GREETING": "hi"}),
        "lsfc",
    )  # fmt: skip
    assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert "".join(job.logs()) == f"hi unset {job.id}\n"


def test_run_and_memory_limits(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    slow = gateway.submit(
        JobSpec(name="slow", command="sleep 600", resources={"walltime_s": 60}), "lsfc"
    )  # -W 1: one emulated minute, 2 s here
    hungry = gateway.submit(
        JobSpec(
            name="hungry",
            command=["python3", "-c", "import time; b = bytearray(300 << 20); time.sleep(600)"],
            resources={"memory_mb": 50},
        ),
        "lsfc",
    )
    timed_out = slow.wait(timeout_s=TIMEOUT_S)
    assert (timed_out.status, timed_out.reason) == (JobStatus.FAILED, "timeout (TERM_RUNLIMIT)")
    assert timed_out.exit_code == 140
    out_of_memory = hungry.wait(timeout_s=TIMEOUT_S)
    assert (out_of_memory.status, out_of_memory.reason) == (
        JobStatus.FAILED, "out of memory (TERM_MEMLIMIT)")  # fmt: skip


def test_index_zero_is_refused_before_submission(gateway: Gateway, tmp_path: Path) -> None:
    profile = load_profile(str(lsf_profile(tmp_path)))
    findings = gateway.preflight(
        JobSpec(name="arr", command="true", array="0-9"), "lsfc", profile=profile
    )
    assert [f.code for f in findings] == ["lsf-array-index"]


def test_a_job_purged_from_bjobs_before_it_was_polled(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    """Finished jobs vanish from bjobs at once: the exit records tell how they ended,
    bhist tells for a job LSF killed (no exit record), and without bhist it is lost."""
    lsf.faults(LSF_EMULATOR_VANISH="jobgate-*")
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    ok = gateway.submit(JobSpec(name="ok", command="echo done"), "lsfc")
    bad = gateway.submit(JobSpec(name="bad", command="exit 4"), "lsfc")
    killed = gateway.submit(
        JobSpec(name="slow", command="sleep 600", resources={"walltime_s": 60}), "lsfc"
    )
    assert ok.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert (bad.wait(timeout_s=TIMEOUT_S).exit_code, bad.status()) == (4, JobStatus.FAILED)
    assert killed.wait(timeout_s=TIMEOUT_S).reason == "timeout (TERM_RUNLIMIT)"
    for job in (ok, bad, killed):
        out = lsf.run("bjobs", "-a", job.record().backend_id or "")
        assert "is not found" in out.stderr


def test_without_bhist_a_job_lsf_forgot_is_lost_never_succeeded(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    profile = lsf_profile(tmp_path, lsf={"bhist": False}, lost_grace_s=2)
    lsf.faults(LSF_EMULATOR_VANISH="jobgate-*")
    start_worker(profile, env=lsf.env())
    killed = gateway.submit(
        JobSpec(name="slow", command="sleep 600", resources={"walltime_s": 60}), "lsfc"
    )
    record = killed.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert (record.reason or "").startswith("lost")
    assert JobStatus.SUCCEEDED not in statuses(record)


def test_a_zombi_job_fails(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    job = gateway.submit(JobSpec(name="z", command="sleep 600"), "lsfc")
    wait_for(lambda: job.record(fresh=True).backend_id, what="an LSF id")
    lsf.faults(LSF_EMULATOR_ZOMBI=f"jobgate-{job.id}")
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert (record.reason or "").startswith("ZOMBI")


def test_daemon_not_responding_for_a_few_polls_fails_no_job(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    gate = tmp_path / "gate"
    jobs = [gateway.submit(JobSpec(name=f"j{i}", command=gated("true", gate)), "lsfc")
            for i in range(3)]  # fmt: skip
    for job in jobs:
        wait_for(lambda job=job: job.status() is JobStatus.RUNNING, what="running")
    lsf.faults(LSF_EMULATOR_NOT_RESPONDING="bjobs:4")
    wait_for(lambda: lsf.fault_used_up("bjobs"), what="four bjobs calls to fail")
    gate.touch()
    for job in jobs:
        record = job.wait(timeout_s=TIMEOUT_S)
        assert record.status is JobStatus.SUCCEEDED
        assert JobStatus.FAILED not in statuses(record)


def test_a_hanging_bjobs_is_killed_retried_and_recovers(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    profile = lsf_profile(tmp_path, lsf={"command_timeout_s": 1})
    worker = start_worker(profile, env=lsf.env())
    gate = tmp_path / "gate"
    job = gateway.submit(JobSpec(name="h", command=gated("true", gate)), "lsfc")
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="running")
    lsf.faults(LSF_EMULATOR_HANG="bjobs:2")
    wait_for(lambda: lsf.fault_used_up("bjobs"), what="two bjobs calls to hang")
    gate.touch()
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert JobStatus.FAILED not in statuses(record)
    assert "bjobs did not answer within 1 s (killed); retrying" in worker.log_text()


def test_above_query_all_above_each_poll_step_is_one_bjobs_and_others_jobs_are_ignored(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    calls = counting_shim(tmp_path / "bjobs-shim", EMULATOR / "bin" / "bjobs")
    # Chunks of 2 ids: asked by id, 4 active jobs would take 2 bjobs calls per step.
    profile = lsf_profile(tmp_path, lsf={"query_all_above": 2, "query_chunk": 2})
    others = [  # held all along: not jobgate's name, or not a job jobgate knows
        parse_submitted(lsf.run("bsub", "-H", "-J", name, "true").stdout)
        for name in ("not-jobgate", "jobgate-stranger")
    ]
    start_worker(profile, env=lsf.env(PATH=f"{calls.parent}{os.pathsep}{lsf.env()['PATH']}"))
    gate = tmp_path / "go"
    commands = ["echo 0", "echo 1", "exit 3", "echo 3"]
    jobs = [gateway.submit(JobSpec(name=f"q{i}", command=gated(c, gate)), "lsfc")
            for i, c in enumerate(commands)]  # fmt: skip
    ids = [j.id for j in jobs]
    wait_for(lambda: all(r and r.backend_id for r in gateway.store.get_many(ids)),
             timeout_s=TIMEOUT_S, what="the jobs on the scheduler")  # fmt: skip
    whole = sum("-J" in a for a in arguments(calls))
    wait_for(lambda: sum("-J" in a for a in arguments(calls)) > whole,
             timeout_s=TIMEOUT_S, what="a poll step about all of the user's jobs")  # fmt: skip
    assert all(job.status() in (JobStatus.PENDING, JobStatus.RUNNING) for job in jobs)
    gate.touch()
    records = [job.wait(timeout_s=TIMEOUT_S) for job in jobs]
    assert [(r.status, r.exit_code) for r in records] == [
        (JobStatus.SUCCEEDED, 0), (JobStatus.SUCCEEDED, 0), (JobStatus.FAILED, 3),
        (JobStatus.SUCCEEDED, 0)]  # fmt: skip
    assert ["".join(j.logs()) for j in (jobs[0], jobs[3])] == ["0\n", "3\n"]
    assert [lsf.record(i)["STAT"] for i in others] == ["PSUSP", "PSUSP"]  # left alone
    status_calls = arguments(calls)
    assert len(status_calls) == gateway.scheduler_queries("lsfc")  # one bjobs per poll step
    asked = [[t for t in a if t.isdigit()] for a in status_calls if "-J" not in a]
    assert all(len(chunk) <= 2 for chunk in asked)  # by id only while at most 2 were active
    assert {r.id for r in gateway.list()} == {j.id for j in jobs}  # no stranger adopted
