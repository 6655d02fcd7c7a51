"""The LSF backend end to end, through the gateway and a real worker, against the LSF
emulator (tests/emulators/lsf: bsub, bjobs, bkill, bhist first on PATH, running jobs
as local processes and printing what IBM documents LSF prints)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import WorkerFactory, counting_shim, wait_for
from test_gateway_e2e import gated, statuses

from jobgate.client import Gateway, JobSpec, JobStatus
from jobgate.client.profiles import load_profile

EMULATOR = Path(__file__).parent / "emulators" / "lsf"
TIMEOUT_S = 60
INTERVAL_S = 0.5


class LsfEmulator:
    """One emulated LSF cluster: its state directory and the environment that uses it."""

    def __init__(self, directory: Path, **settings: str) -> None:
        self.directory = directory
        self.settings = settings

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{EMULATOR / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "LSF_EMULATOR_DIR": str(self.directory),
            **self.settings,
            **more,
        }

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=self.env(), capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip

    def record(self, backend_id: str | None) -> dict[str, str]:
        """The job's bjobs record, as LSF would print it."""
        assert backend_id is not None
        out = self.run("bjobs", "-a", "-json", "-o", "jobid job_name stat exit_reason", backend_id)
        records = json.loads(out.stdout)["RECORDS"]
        assert records, out.stderr
        return dict(records[0])

    def faults(self, **switches: str) -> None:
        """Fault switches a running worker's commands see from now on."""
        path = self.directory / "faults.json"
        path.with_suffix(".tmp").write_text(json.dumps(switches))
        path.with_suffix(".tmp").rename(path)

    def stop(self) -> None:
        self.run(str(EMULATOR / "bin" / "lsf-emulator-stop"))


@pytest.fixture
def lsf(tmp_path: Path) -> Iterator[LsfEmulator]:
    directory = tmp_path / "lsf-state"
    directory.mkdir()
    cluster = LsfEmulator(directory, LSF_EMULATOR_MINUTE_S="2", LSF_UNIT_FOR_LIMITS="MB")
    yield cluster
    cluster.stop()


def lsf_profile(tmp_path: Path, **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "name": "lsfc",
        "backend": "lsf",
        "lsf": {"work_dir": str(tmp_path / "lsf-jobs"), "command_timeout_s": 10,
                "lsf_units": "MB"},
        "poll_interval_min_s": INTERVAL_S,
        "poll_interval_max_s": INTERVAL_S,
        "lease_ttl_s": 5,
        "reconcile_interval_s": 1,
        "lost_grace_s": 60,
        "policy": {"warn_missing_walltime": False},
    }  # fmt: skip
    lsf_overrides = overrides.pop("lsf", {})
    data["lsf"].update(lsf_overrides)
    data.update(overrides)
    path = tmp_path / "lsfc.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_success_failure_and_output(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    ok = gateway.submit(JobSpec(name="ok", command="echo hello from $LSB_JOBID"), "lsfc")
    bad = gateway.submit(JobSpec(name="bad", command="echo oops >&2; exit 3"), "lsfc")
    record = ok.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code) == (JobStatus.SUCCEEDED, 0)
    assert "".join(ok.logs()) == f"hello from {record.backend_id}\n"
    assert lsf.record(record.backend_id)["JOB_NAME"] == f"jobgate-{ok.id}"
    failed = bad.wait(timeout_s=TIMEOUT_S)
    assert (failed.status, failed.exit_code, failed.reason) == (JobStatus.FAILED, 3, "exit code 3")
    assert "".join(bad.logs("stderr")) == "oops\n"
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


def test_cancel_a_running_job(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    job = gateway.submit(JobSpec(name="long", command=gated("true", tmp_path / "never")), "lsfc")
    wait_for(lambda: job.status() is JobStatus.RUNNING, timeout_s=TIMEOUT_S, what="running")
    record = job.cancel(timeout_s=TIMEOUT_S)
    assert (record.status, record.reason) == (JobStatus.CANCELLED, "cancelled by user")
    wait_for(lambda: lsf.record(record.backend_id)["STAT"] == "EXIT", what="LSF to kill it")
    assert lsf.record(record.backend_id)["EXIT_REASON"].startswith("TERM_OWNER")


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


def test_an_array_of_ten_runs_three_at_a_time(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    job = gateway.submit(
        JobSpec(name="arr", command="sleep 0.5; echo $JOBGATE_ARRAY_INDEX", array="1-10%3"),
        "lsfc",
    )
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert [(e.index, e.status) for e in record.elements] == [
        (i, JobStatus.SUCCEEDED) for i in range(1, 11)]  # fmt: skip
    spans = [(e.started_at, e.finished_at) for e in record.elements]
    for start, _ in spans:
        assert sum(1 for s, f in spans if s is not None and f is not None and s <= start < f) <= 3
    for index in (1, 10):
        assert "".join(job.logs(index=index)) == f"{index}\n"


def test_index_zero_is_refused_before_submission(gateway: Gateway, tmp_path: Path) -> None:
    profile = load_profile(str(lsf_profile(tmp_path)))
    findings = gateway.preflight(
        JobSpec(name="arr", command="true", array="0-9"), "lsfc", profile=profile
    )
    assert [f.code for f in findings] == ["lsf-array-index"]


def test_dependencies_run_in_order_and_a_failed_one_fails_the_next(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    start_worker(lsf_profile(tmp_path), env=lsf.env())
    order = tmp_path / "order"
    first = gateway.submit(JobSpec(name="a", command=f"sleep 1; echo a >> {order}"), "lsfc")
    second = gateway.submit(
        JobSpec(name="b", command=f"echo b >> {order}", depends_on=[first.id]), "lsfc"
    )
    assert second.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert order.read_text() == "a\nb\n"

    gate = tmp_path / "gate"
    broken = gateway.submit(JobSpec(name="c", command=gated("exit 1", gate)), "lsfc")
    after = gateway.submit(JobSpec(name="d", command="true", depends_on=[broken.id]), "lsfc")
    wait_for(lambda: after.record(fresh=True).backend_id, what="the dependent job on LSF")
    gate.touch()
    record = after.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.reason) == (JobStatus.FAILED, "dependency failed")
    wait_for(lambda: lsf.record(record.backend_id)["STAT"] == "EXIT", what="bkill of the orphan")


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
    wait_for(lambda: _fault_used_up(lsf, "bjobs"), what="four bjobs calls to fail")
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
    wait_for(lambda: _fault_used_up(lsf, "bjobs"), what="two bjobs calls to hang")
    gate.touch()
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert JobStatus.FAILED not in statuses(record)
    assert "bjobs did not answer within 1 s (killed); retrying" in worker.log_text()


def _fault_used_up(lsf: LsfEmulator, command: str) -> bool:
    return lsf.run(str(EMULATOR / "bin" / "lsf-emulator-faults"), command).stdout.strip() == "0"


@pytest.mark.timeout(300)  # 100 bsubs and 100 emulated jobs share two CPUs with the worker
def test_a_hundred_jobs_finish_with_one_bjobs_per_interval(
    gateway: Gateway, lsf: LsfEmulator, tmp_path: Path, start_worker: WorkerFactory
) -> None:
    calls = counting_shim(tmp_path / "shim", EMULATOR / "bin" / "bjobs")
    path = os.pathsep.join([str(tmp_path / "shim"), str(EMULATOR / "bin"), os.environ["PATH"]])
    # Reconcile would also ask bjobs about jobs still NEW in the submit backlog: not measured.
    profile = lsf_profile(tmp_path, reconcile_interval_s=60)
    start_worker(profile, env=lsf.env(PATH=path), concurrency=4)
    gate = tmp_path / "gate"
    began = time.monotonic()
    # a slow gate: 100 jobs checking every 50 ms would keep both CPUs busy forking `sleep`
    wait = f'while [ ! -e "{gate}" ]; do sleep 1; done'
    jobs = [gateway.submit(JobSpec(name=f"j{i}", command=f"{wait}; echo {i}"), "lsfc")
            for i in range(100)]  # fmt: skip
    ids = [job.id for job in jobs]
    wait_for(lambda: all(r and r.backend_id for r in gateway.store.get_many(ids)),
             timeout_s=120, what="all 100 jobs on LSF")  # fmt: skip
    gate.touch()
    for i, job in enumerate(jobs):
        assert job.wait(timeout_s=300).status is JobStatus.SUCCEEDED
        if i % 25 == 0:
            assert "".join(job.logs()) == f"{i}\n"
    elapsed = time.monotonic() - began
    bjobs_calls = len(calls.read_text().split())
    intervals = elapsed / INTERVAL_S
    # one bjobs per poll step
    assert bjobs_calls <= intervals + 10, (bjobs_calls, intervals)
    assert gateway.store.query_stats("lsfc")["jobs_queried"] / gateway.scheduler_queries("lsfc") > 5
