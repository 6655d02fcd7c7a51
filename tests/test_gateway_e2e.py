"""End to end on the local backend: real Redis, real `jobgate worker` subprocesses, real jobs.

Jobs that must be seen running wait for a gate file that the test creates, so no
test depends on how fast anything is.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from celery.result import AsyncResult
from conftest import ProfileFactory, WorkerFactory, wait_for

from jobgate.client import Gateway, JobRecord, JobSpec, JobStatus, routing
from jobgate.workers.backends.local import group_members

TIMEOUT_S = 60


def gated(command: str, gate: Path) -> str:
    """A shell command that waits for `gate` to exist, then runs `command`."""
    return f'while [ ! -e "{gate}" ]; do sleep 0.05; done; {command}'


def statuses(record: JobRecord) -> list[JobStatus]:
    return [h.status for h in record.history]


def test_success_with_logs_and_result_backend(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker(make_profile())
    gate = tmp_path / "go"
    job = gateway.submit(
        JobSpec(name="hello", command=gated("echo hello; echo oops >&2", gate)), cluster="local"
    )
    assert job.status() in {JobStatus.NEW, JobStatus.PENDING, JobStatus.RUNNING}
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    gate.touch()

    assert "".join(job.logs(follow=True, timeout_s=TIMEOUT_S)) == "hello\n"
    record = job.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code, record.reason) == (JobStatus.SUCCEEDED, 0, None)
    assert statuses(record) == [
        JobStatus.NEW,
        JobStatus.PENDING,
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    ]
    assert record.started_at is not None
    assert record.finished_at is not None
    assert record.started_at <= record.finished_at
    assert "".join(job.logs("stderr")) == "oops\n"
    final = AsyncResult(job.result_id, app=gateway.celery).get(timeout=TIMEOUT_S)
    assert JobRecord.model_validate(final) == record
    assert gateway.job(job.id).record() == record


def test_failure_reports_the_exit_code(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile())
    job = gateway.submit(
        JobSpec(name="hello", command="echo hello; echo oops >&2; exit 3"), cluster="local"
    )
    record = job.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code, record.reason) == (JobStatus.FAILED, 3, "exit code 3")
    assert record.history[-1].exit_code == 3
    assert AsyncResult(job.result_id, app=gateway.celery).get(timeout=TIMEOUT_S)["exit_code"] == 3
    assert "".join(job.logs()) == "hello\n"


def test_cancel_kills_the_whole_process_group(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    work_dir: Path,
) -> None:
    start_worker(make_profile())
    job = gateway.submit(
        JobSpec(name="sleepy", command="sleep 300 & sleep 300 & echo started; wait"),
        cluster="local",
    )
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    pgid = json.loads((work_dir / job.id / f"{job.id}.proc").read_text())["pgid"]
    assert len(group_members(pgid)) >= 3  # runner, task, shell, two sleeps

    record = job.cancel(timeout_s=TIMEOUT_S)
    assert (record.status, record.reason) == (JobStatus.CANCELLED, "cancelled by user")
    assert group_members(pgid) == []
    assert job.wait(timeout_s=5).status is JobStatus.CANCELLED
    assert AsyncResult(job.result_id, app=gateway.celery).get(timeout=TIMEOUT_S)["status"] == (
        "CANCELLED"
    )
    assert job.cancel().status is JobStatus.CANCELLED  # cancelling twice changes nothing
    assert statuses(job.record()).count(JobStatus.CANCELLED) == 1


def test_array_runs_at_most_max_concurrent_elements(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker(make_profile())
    # Each element waits (up to 30 s) until two elements have started: an array run
    # one element at a time fails here instead of passing by luck of timing.
    barrier = (
        f'touch "{tmp_path}/started.$JOBGATE_ARRAY_INDEX"; n=0; '
        f'while [ "$(ls "{tmp_path}" | grep -c started)" -lt 2 ]; do '
        "n=$((n + 1)); [ $n -lt 600 ] || exit 9; sleep 0.05; done; "
        "echo $JOBGATE_ARRAY_INDEX"
    )
    job = gateway.submit(JobSpec(name="arr", command=barrier, array="0-4%2"), cluster="local")
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert [(e.index, e.status) for e in record.elements] == [
        (i, JobStatus.SUCCEEDED) for i in range(5)
    ]
    intervals = [(e.started_at, e.finished_at) for e in record.elements]
    for start, _ in intervals:
        running = [1 for s, f in intervals if s is not None and f is not None and s <= start < f]
        assert len(running) <= 2
    for index in range(5):
        assert "".join(job.logs(index=index)) == f"{index}\n"


def test_array_with_a_failed_element_fails(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile())
    job = gateway.submit(
        JobSpec(name="arr", command='[ "$JOBGATE_ARRAY_INDEX" != 2 ]', array="1-3"),
        cluster="local",
    )
    record = job.wait(timeout_s=TIMEOUT_S)
    assert (record.status, record.exit_code) == (JobStatus.FAILED, 1)
    assert record.reason == "1 of 3 elements failed (indices 2)"
    assert [e.status for e in record.elements] == [
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.SUCCEEDED,
    ]


def test_fifty_concurrent_jobs_all_finish_with_batched_queries(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile(), concurrency=4)
    jobs = []
    lock = threading.Lock()

    def submit(first: int) -> None:
        for i in range(first, first + 10):
            job = gateway.submit(
                JobSpec(name=f"j{i}", command=f"sleep 1; echo {i}", tags=["fifty"]),
                cluster="local",
            )
            with lock:
                jobs.append((i, job))

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(0, 50, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(jobs) == 50
    for i, job in jobs:
        assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
        assert "".join(job.logs()) == f"{i}\n"
    assert len(gateway.list(tags={"fifty"}, statuses={JobStatus.SUCCEEDED}, limit=100)) == 50
    stats = gateway.store.query_stats("local")
    assert stats["jobs_queried"] / stats["queries"] >= 10, f"queries were not batched: {stats}"


def test_the_same_submit_delivered_twice_starts_one_process(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    start_worker(make_profile(), concurrency=4)
    runs, gate = tmp_path / "runs", tmp_path / "go"
    job = gateway.submit(
        JobSpec(name="once", command=gated(f"echo ran >> {runs}", gate)), cluster="local"
    )
    for _ in range(3):
        gateway.celery.send_task(routing.SUBMIT, args=[job.id], queue=routing.queue("local"))
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    gate.touch()
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert runs.read_text() == "ran\n"
    assert statuses(record).count(JobStatus.PENDING) == 1


def test_every_redis_key_is_under_the_jobgate_prefix(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    """Celery's queues, results, bindings and events share the tenant prefix with ours."""
    start_worker(make_profile())
    job = gateway.submit(JobSpec(name="k", command="echo k"), cluster="local")
    job.wait(timeout_s=TIMEOUT_S)
    assert "".join(job.logs()) == "k\n"
    assert AsyncResult(job.result_id, app=gateway.celery).get(timeout=TIMEOUT_S)
    keys = list(gateway.store.redis.scan_iter(count=1000))
    assert any(k.startswith(f"jobgate:{gateway.tenant}:_kombu.binding.") for k in keys)
    assert any(k.startswith(f"jobgate:{gateway.tenant}:celery-task-meta-") for k in keys)
    assert [k for k in keys if not k.startswith("jobgate:")] == []


def test_working_dir_and_environment(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker(make_profile(defaults={"env": {"FROM_PROFILE": "p", "MINE": "overridden"}}))
    job = gateway.submit(
        JobSpec(
            name="env",
            command='pwd; echo "$FROM_PROFILE $MINE $JOBGATE_JOB_ID ${JOBGATE_URL:-no-url}"',
            env={"MINE": "m"},
            working_dir=str(tmp_path),
        ),
        cluster="local",
    )
    assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert "".join(job.logs()) == f"{tmp_path}\np m {job.id} no-url\n"


def test_argv_command_is_not_interpreted_by_a_shell(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker(make_profile())
    marker = tmp_path / "injected"
    argv = ["printf", "%s|", "a b", "$(touch " + str(marker) + ")", "'; touch x"]
    job = gateway.submit(JobSpec(name="argv", command=argv), cluster="local")
    assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert "".join(job.logs()) == f"a b|$(touch {marker})|'; touch x|"
    assert not marker.exists()


def test_missing_working_dir_fails_the_job_with_the_reason(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    start_worker(make_profile())
    job = gateway.submit(
        JobSpec(name="nowhere", command="true", working_dir="/nonexistent/dir"), cluster="local"
    )
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert record.reason is not None
    assert record.reason.startswith("submit failed: cannot start job")
    assert "/nonexistent/dir" in record.reason


def test_a_job_killed_outside_jobgate_is_failed_as_lost(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    work_dir: Path,
) -> None:
    start_worker(make_profile())
    job = gateway.submit(JobSpec(name="victim", command="sleep 300"), cluster="local")
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    pgid = json.loads((work_dir / job.id / f"{job.id}.proc").read_text())["pgid"]
    os.killpg(pgid, signal.SIGKILL)
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert record.reason is not None
    assert record.reason.startswith("lost:")


def test_fresh_status_refreshes_a_stale_snapshot(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    start_worker(make_profile(poll_s=0.5))
    gate = tmp_path / "go"
    job = gateway.submit(JobSpec(name="m", command=gated("true", gate)), cluster="local")
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    # A lease held by a chain that does not exist: the real chain stops at its next
    # step and reconcile sees a live lease, so nothing polls this cluster any more.
    gateway.store.redis.set(gateway.keys.poll_lease("local"), "elsewhere:0", ex=600)
    wait_for(lambda: _stats(gateway).get("polls_superseded"), what="the chain to stop")
    queries = gateway.scheduler_queries("local")
    gate.touch()
    record = wait_for(
        lambda: (r := job.record(fresh=True)).status.is_finished and r, what="fresh status"
    )
    assert record.status is JobStatus.SUCCEEDED
    assert job.status() is JobStatus.SUCCEEDED  # the refresh was applied to the store
    assert gateway.scheduler_queries("local") > queries


def _stats(gateway: Gateway) -> dict[str, float]:
    return gateway.store.query_stats("local")
