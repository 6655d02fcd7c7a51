"""End to end on the local backend: real Redis, real `jobgate worker` subprocesses, real jobs.

What every backend must do (success, failure, cancel, arrays, lost jobs, many jobs) is
in the backend contract suite, tests/contract; here is what the core does around it on
the local backend. Jobs that must be seen running wait for a gate file that the test
creates, so no test depends on how fast anything is.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
from celery.result import AsyncResult

from jobgate.client import Gateway, JobSpec, JobStatus, routing
from tests.support.records import statuses
from tests.support.waiting import TIMEOUT_S, gated, wait_for
from tests.support.workers import ProfileFactory, WorkerFactory


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


def test_a_final_result_is_stored_compressed_and_reads_back_as_the_record(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    """zlib makes a final record's ~1.4 KB of JSON ~0.6 KB until its result expires."""
    start_worker(make_profile())
    job = gateway.submit(JobSpec(name="small", command="true"), cluster="local")
    record = job.wait(timeout_s=TIMEOUT_S)
    result = AsyncResult(job.result_id, app=gateway.celery).get(timeout=TIMEOUT_S)
    assert result == record.model_dump(mode="json")
    raw = redis.Redis.from_url(gateway.url)  # bytes: the stored value is not text
    stored = raw.get(f"jobgate:{gateway.tenant}:celery-task-meta-{job.result_id}")
    raw.close()
    assert stored is not None
    assert stored.startswith(b"\x00celery-compressed\x00")
    assert len(stored) < len(json.dumps(result))


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


def test_a_finished_job_keeps_no_event_stream_and_still_answers_wait_and_events(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    """Finalize drops the job's event stream (its bytes are most of an unfinished job's);
    a wait that blocked on it wakes, and the events are read from the history after."""
    start_worker(make_profile())
    store, gate = gateway.store, tmp_path / "go"
    job = gateway.submit(JobSpec(name="ev", command=gated("echo ev", gate)), cluster="local")
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    stream_id = store.last_event_id(job.id)
    assert stream_id != "0"
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(job.wait, TIMEOUT_S)
        gate.touch()
        record = waiting.result(timeout=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    wait_for(
        lambda: not store.redis.exists(store.keys.events(job.id)),
        what="finalize to drop the event stream",
    )

    assert job.wait(timeout_s=TIMEOUT_S) == record == job.record()
    events = store.read_events(job.id, "0", block_ms=TIMEOUT_S * 1000)
    assert [(e["status"], e["previous"]) for _, e in events] == [
        ("NEW", ""),
        ("PENDING", "NEW"),
        ("RUNNING", "PENDING"),
        ("SUCCEEDED", "RUNNING"),
    ]
    assert events[-1][1]["exit_code"] == "0"
    assert store.read_events(job.id, events[1][0], block_ms=1) == events[2:]
    assert store.read_events(job.id, stream_id, block_ms=TIMEOUT_S * 1000) == []
    assert "".join(job.logs(follow=True)) == "ev\n"
