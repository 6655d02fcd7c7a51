"""Workers that die or stop while they work: a whole worker killed at each point of a
submit, a pool child killed (as by the OOM killer), duplicate deliveries to two workers,
and a warm shutdown while the polling chain's countdown tasks are held. Each time: no
job lost, none submitted or run twice, every record ends right, the chain resumes.

Faults are injected for real: SIGKILL from a stand-in scheduler command on PATH at the
exact point of the submit, SIGTERM to the worker, duplicate messages sent with Celery.
Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from celery.result import AsyncResult

from jobgate.client import Gateway, Job, JobRecord, JobSpec, JobStatus, routing
from scripts import devstack
from tests.support.records import statuses
from tests.support.shims import count, counting_shim, killing_shim
from tests.support.slurm import LocalSlurm, SlurmHarness, slurm_ids_named
from tests.support.waiting import gated, wait_for
from tests.support.workers import ProfileFactory, WorkerFactory

#: Short enough that a dead worker's unacknowledged submit comes back within a test,
#: far above the 0.5 s poll interval of the test profiles.
VISIBILITY_TIMEOUT_S = "5"
SBATCH = Path("/usr/bin/sbatch")


def _ran_once(job: Job, runs: Path, timeout_s: float) -> None:
    """The job ends SUCCEEDED, having run once and passed each state once."""
    record = job.wait(timeout_s=timeout_s)
    assert record.status is JobStatus.SUCCEEDED, record
    assert JobStatus.FAILED not in statuses(record)
    assert statuses(record).count(JobStatus.SUCCEEDED) == 1
    assert statuses(record).count(JobStatus.PENDING) == 1
    assert runs.read_text().split() == [job.id]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("point", ["before-sbatch", "after-sbatch", "after-recording"])
def test_a_worker_killed_at_any_point_of_a_submit_leaves_one_job_on_slurm(
    slurm_backend: SlurmHarness, slurm: LocalSlurm, tmp_path: Path, point: str
) -> None:
    """SIGKILL to the worker's whole process group (main process and pool children):
    before sbatch ran, after sbatch answered but before the id was recorded, or after
    it was recorded. A new worker then gets the job to Slurm, once."""
    harness, group = slurm_backend, tmp_path / "worker-pgid"
    armed = killing_shim(tmp_path / "sbatch-shim", SBATCH, kill=f'-"$(cat {group})"',
                         after_answer=point == "after-sbatch")  # fmt: skip
    env = harness.worker_env()
    env["PATH"] = f"{armed.parent}{os.pathsep}{env['PATH']}"
    env["JOBGATE_VISIBILITY_TIMEOUT_S"] = VISIBILITY_TIMEOUT_S
    profile = harness.profile()
    doomed = harness.start_worker(profile, env=env, name="doomed")
    group.write_text(str(doomed.pid))  # the worker leads its own process group
    if point != "after-recording":
        armed.touch()
    runs = tmp_path / "runs"
    job = harness.submit_named("once", f'echo "$JOBGATE_JOB_ID" >> {runs}; echo done')

    if point == "after-recording":
        wait_for(lambda: job.record().backend_id, timeout_s=60, what="the Slurm id recorded")
        doomed.kill()
    else:
        wait_for(lambda: not doomed.running(), timeout_s=60, what="the shim to kill the worker")
        assert job.record().backend_id is None
    killed = time.monotonic()
    assert not doomed.running()

    harness.start_worker(profile, env=env, name="successor")
    up = time.monotonic() - killed
    backend_id = wait_for(lambda: job.record().backend_id, timeout_s=120,
                          what="the job on Slurm")  # fmt: skip
    on_slurm = time.monotonic() - killed
    _ran_once(job, runs, harness.timeout_s)
    done = time.monotonic() - killed
    assert slurm_ids_named(slurm, f"jobgate-{job.id}") == [backend_id]
    if point == "after-sbatch":
        assert (armed.parent / "fired").read_text().split() == [backend_id]  # adopted
    print(f"FIGURE worker-sigkill slurm {point}: 1 job on Slurm, ran once; after the kill: "
          f"new worker up {up:.1f} s, Slurm id recorded {on_slurm:.1f} s, done {done:.1f} s "
          f"(visibility timeout {VISIBILITY_TIMEOUT_S} s)")  # fmt: skip


def _child_lost(log: str) -> bool:
    """Whether the worker's log says a pool child died of SIGKILL while running a task."""
    return "WorkerLostError('Worker exited prematurely: signal 9 (SIGKILL)" in log


@pytest.mark.timeout(240)
@pytest.mark.parametrize("point", ["poll-step", "before-sbatch", "after-sbatch"])
def test_a_pool_child_killed_in_a_poll_step_or_a_submit_loses_and_repeats_nothing(
    slurm_backend: SlurmHarness, slurm: LocalSlurm, tmp_path: Path, point: str
) -> None:
    """SIGKILL to the pool child alone, as the OOM killer would: from squeue while it
    runs a poll step, or from sbatch before it ran or after it answered. Celery requeues
    the task (acks late, reject on worker lost); the same worker goes on."""
    harness = slurm_backend
    if point == "poll-step":
        real, after = harness.shim_dir / "squeue", False  # still counted
    else:
        real, after = SBATCH, point == "after-sbatch"
    armed = killing_shim(tmp_path / "killing-shim", real, kill="$PPID", after_answer=after)
    env = harness.worker_env()
    env["PATH"] = f"{armed.parent}{os.pathsep}{env['PATH']}"
    worker = harness.start_worker(harness.profile(), env=env)
    runs, gate = tmp_path / "runs", tmp_path / "go"
    if point != "poll-step":
        armed.touch()
    job = harness.submit_named("once", gated(f'echo "$JOBGATE_JOB_ID" >> {runs}', gate))
    if point == "poll-step":
        wait_for(lambda: job.status() is JobStatus.RUNNING, timeout_s=harness.timeout_s,
                 what="the job running")  # fmt: skip
        armed.touch()
    wait_for(lambda: (armed.parent / "fired").exists(), timeout_s=60, what="the kill")
    killed, queries = time.monotonic(), harness.gateway.scheduler_queries(harness.cluster)
    wait_for(lambda: _child_lost(worker.log_text()), what="Celery to see the child die")
    wait_for(lambda: harness.gateway.scheduler_queries(harness.cluster) > queries,
             timeout_s=60, what="polling to go on")  # fmt: skip
    resumed = time.monotonic() - killed
    gate.touch()

    _ran_once(job, runs, harness.timeout_s)
    assert slurm_ids_named(slurm, f"jobgate-{job.id}") == [job.record().backend_id]
    assert worker.running()
    print(f"FIGURE pool-child-sigkill slurm {point}: 1 job on Slurm, ran once; next "
          f"query {resumed:.1f} s after the kill")  # fmt: skip


@pytest.mark.timeout(180)
def test_a_submit_that_kills_its_pool_child_every_time_fails_the_job_after_three_deaths(
    slurm_backend: SlurmHarness, slurm: LocalSlurm, tmp_path: Path
) -> None:
    """Celery requeues the task of a pool child that died; a submit that kills its child
    each time (always out of memory, say) must not go round forever."""
    harness = slurm_backend
    shim_dir = tmp_path / "deadly"
    shim_dir.mkdir()
    calls = shim_dir / "calls"
    (shim_dir / "sbatch").write_text(f"#!/bin/sh\necho x >> {calls}\nkill -9 $PPID\nexit 1\n")
    (shim_dir / "sbatch").chmod(0o755)
    env = harness.worker_env()
    env["PATH"] = f"{shim_dir}{os.pathsep}{env['PATH']}"
    worker = harness.start_worker(harness.profile(), env=env)

    job = harness.submit_named("deadly", "true")
    record = job.wait(timeout_s=120)

    assert record.status is JobStatus.FAILED, record
    assert record.reason == "the worker process died while submitting it, each time " \
        "(out of memory?): 3 attempts", record  # fmt: skip
    assert count(calls) == 3
    assert slurm_ids_named(slurm, f"jobgate-{job.id}") == []
    assert worker.running()
    worker.kill()
    harness.start()  # with the real sbatch: the cluster is fine
    assert harness.submit_named("fine", "true").wait(timeout_s=120).status is JobStatus.SUCCEEDED
    print(f"FIGURE pool-child-sigkill-always slurm: the job FAILED after {count(calls)} deaths, "
          "worker up")  # fmt: skip


def _received(worker: devstack.Worker, task: str) -> int:
    """How many messages of `task` the worker took."""
    return worker.log_text().count(f"Task {task}[")


@pytest.mark.timeout(240)
def test_submit_poll_and_cancel_delivered_twice_at_once_to_two_workers_act_once(
    slurm_backend: SlurmHarness, slurm: LocalSlurm, tmp_path: Path
) -> None:
    """Copies of a job's submit (sbatch slowed down, so that they overlap), of a poll step
    and of its cancel, sent with Celery to two workers: one job on Slurm, one chain, one
    CANCELLED transition, event and finalization; both cancels answer the same record."""
    harness, gateway, cluster = slurm_backend, slurm_backend.gateway, slurm_backend.cluster
    sbatch_calls = counting_shim(tmp_path / "sbatch-shim", SBATCH, delay_s=1)
    env = harness.worker_env()
    env["PATH"] = f"{sbatch_calls.parent}{os.pathsep}{env['PATH']}"
    profile = harness.profile()
    workers = [harness.start_worker(profile, env=env, name=n) for n in ("left", "right")]
    job = harness.submit_named("twice", "sleep 300")
    for _ in range(3):
        gateway.celery.send_task(routing.SUBMIT, args=[job.id], queue=routing.queue(cluster))
    wait_for(lambda: job.status() is JobStatus.RUNNING, timeout_s=harness.timeout_s,
             what="the job running")  # fmt: skip
    assert count(sbatch_calls) == 1
    assert slurm_ids_named(slurm, f"jobgate-{job.id}") == [job.record().backend_id]
    assert all(_received(w, routing.SUBMIT) for w in workers)  # both took copies

    lease, stats = gateway.keys.poll_lease(cluster), gateway.store.query_stats
    token, seq = str(gateway.store.redis.get(lease)).split(":")
    superseded = stats(cluster).get("polls_superseded", 0)
    for _ in range(4):
        gateway.celery.send_task(routing.POLL, args=[cluster, token, int(seq)],
                                 queue=routing.poll_queue(cluster))  # fmt: skip
    wait_for(lambda: stats(cluster).get("polls_superseded", 0) >= superseded + 3,
             what="the copies of the step turned away")  # fmt: skip
    assert str(gateway.store.redis.get(lease)).split(":")[0] == token  # still one chain

    cancels = [
        gateway.celery.send_task(routing.CANCEL, args=[job.id], queue=routing.queue(cluster))
        for _ in range(2)
    ]
    answers = [JobRecord.model_validate(c.get(timeout=60)["record"]) for c in cancels]
    assert answers[0] == answers[1] == job.record()
    record = answers[0]
    assert record.status is JobStatus.CANCELLED
    assert Counter(statuses(record)) == {
        JobStatus.NEW: 1,
        JobStatus.PENDING: 1,
        JobStatus.RUNNING: 1,
        JobStatus.CANCELLED: 1,
    }
    events = [e["status"] for _, e in gateway.store.read_events(job.id, "0", block_ms=1)]
    assert events.count("CANCELLED") == 1
    harness.on_scheduler(job).assert_stopped()
    finalized = f"job {job.id} finished: CANCELLED"
    assert sum(w.log_text().count(finalized) for w in workers) == 1
    assert (
        JobRecord.model_validate(AsyncResult(job.result_id, app=gateway.celery).get(60)) == record
    )
    print(f"FIGURE duplicate-deliveries slurm: 4 submits -> {count(sbatch_calls)} sbatch, "
          f"4 copies of a poll step -> 1 chain, 2 cancels -> 1 CANCELLED")  # fmt: skip


def _held_poll_steps(gateway: Gateway, hostname: str) -> list[list[object]]:
    """The arguments of the countdown poll steps a worker holds."""
    scheduled = gateway.celery.control.inspect(destination=[hostname], timeout=2).scheduled()
    return [
        entry["request"]["args"]
        for entries in (scheduled or {}).values()
        for entry in entries
        if entry["request"]["name"] == routing.POLL
    ]


def _queued_tasks(gateway: Gateway, queue: str) -> list[tuple[str, str]]:
    """(task name, argsrepr) of the messages waiting in a queue, read in Redis."""
    raw = gateway.store.redis.lrange(f"{gateway.keys.prefix}{queue}", 0, -1)
    headers = [json.loads(message)["headers"] for message in raw]
    return [(h["task"], h["argsrepr"]) for h in headers]


@pytest.mark.timeout(180)
def test_a_warm_shutdown_puts_the_held_countdown_steps_back_and_a_new_worker_goes_on(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    """SIGTERM to a worker that holds the polling chain's next step (a countdown task,
    unacknowledged): before it exits the step is back in the poll queue, nothing is left
    unacknowledged, and a new worker continues the same chain until every job is done."""
    profile = make_profile(poll_s=2, lease_ttl_s=60)  # a replaced chain would show
    first = start_worker(profile, name="first")
    runs, gate = tmp_path / "runs", tmp_path / "go"
    command = gated(f'echo "$JOBGATE_JOB_ID" >> {runs}', gate)
    jobs = [gateway.submit(JobSpec(name=f"j{i}", command=command), "local") for i in range(3)]
    wait_for(lambda: all(j.status() is JobStatus.RUNNING for j in jobs), what="jobs running")
    (held,) = wait_for(lambda: _held_poll_steps(gateway, first.hostname), what="a held step")
    token = held[1]

    stopping = time.monotonic()
    assert first.proc is not None
    first.proc.send_signal(signal.SIGTERM)
    first.proc.wait(timeout=60)
    stopped_s = time.monotonic() - stopping
    assert first.proc.returncode == 0  # a clean stop, not a kill
    assert gateway.store.redis.hlen(f"{gateway.keys.prefix}unacked") == 0
    queued = _queued_tasks(gateway, routing.poll_queue("local"))
    assert [name for name, _ in queued].count(routing.POLL) == 1
    assert any(name == routing.POLL and token in args for name, args in queued)

    second = start_worker(profile, name="second")
    lease = gateway.keys.poll_lease("local")
    wait_for(lambda: int(str(gateway.store.redis.get(lease)).split(":")[1]) > held[2],
             timeout_s=60, what="the chain's next step")  # fmt: skip
    assert str(gateway.store.redis.get(lease)).split(":")[0] == token  # the same chain
    gate.touch()
    for job in jobs:
        assert job.wait(timeout_s=60).status is JobStatus.SUCCEEDED
    assert sorted(runs.read_text().split()) == sorted(j.id for j in jobs)
    assert "had active jobs and no polling chain" not in second.log_text()
    print(f"FIGURE warm-shutdown local: held poll step back in its queue before exit "
          f"(exit {stopped_s:.1f} s after SIGTERM); 3 jobs done once, same chain")  # fmt: skip
