"""The contract every backend keeps, run against local, Slurm, LSF and Kubernetes.

Each test is one scenario, written once; the `backend` fixture (conftest.py here) runs
it on each backend through that backend's harness (tests/support/harness.py), which
holds what differs: reason texts, how a job vanishes, how the scheduler is asked whether
it stopped a job, how its status calls are counted. Jobs that must be seen running wait
for a gate file the test creates, so no test depends on how fast anything is.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from celery.result import AsyncResult

from jobgate.client import Job, JobRecord, JobSpec, JobStatus, PolicyLevel, ids
from jobgate.client.profiles import load_profile
from tests.support.harness import BackendHarness, Stream
from tests.support.records import statuses
from tests.support.waiting import gated, wait_for


def final_result(backend: BackendHarness, job: Job) -> dict[str, object]:
    """The final record as the Celery result backend holds it."""
    result = AsyncResult(job.result_id, app=backend.gateway.celery)
    answer: dict[str, object] = result.get(timeout=backend.timeout_s)
    return answer


def read_logs(job: Job, streams: dict[Stream, str]) -> dict[Stream, str]:
    """What each of `streams` of the job's output holds now."""
    return {stream: "".join(job.logs(stream)) for stream in streams}


def test_a_job_that_succeeds_and_one_that_exits_3_end_with_their_output_and_records(
    backend: BackendHarness, tmp_path: Path
) -> None:
    """Success and failure in one test, to start one worker for both."""
    backend.start()
    gate = tmp_path / "go"
    job = backend.submit_named("hello", gated("echo hello; echo oops >&2", gate))
    bad = backend.submit_named("bad", "echo hello; echo oops >&2; exit 3")
    assert job.status() in {JobStatus.NEW, JobStatus.PENDING, JobStatus.RUNNING}
    wait_for(
        lambda: job.status() is JobStatus.RUNNING, timeout_s=backend.timeout_s, what="job running"
    )
    gate.touch()

    expected = backend.expected_logs("hello\n", "oops\n")
    followed = "".join(job.logs(follow=True, timeout_s=backend.timeout_s))
    assert followed == expected["stdout"]
    record = job.wait(timeout_s=backend.timeout_s)
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
    assert read_logs(job, expected) == expected
    assert JobRecord.model_validate(final_result(backend, job)) == record
    assert backend.gateway.job(job.id).record() == record

    failed = bad.wait(timeout_s=backend.timeout_s)
    assert (failed.status, failed.exit_code, failed.reason) == (
        JobStatus.FAILED,
        3,
        backend.exit_3_reason,
    )
    assert failed.history[-1].exit_code == 3
    assert final_result(backend, bad)["exit_code"] == 3
    assert read_logs(bad, expected) == expected


def test_cancelling_a_running_job_stops_it_on_the_scheduler_once(
    backend: BackendHarness,
) -> None:
    backend.start()
    job = backend.submit_named("sleepy", "sleep 300 & sleep 300 & echo started; wait")
    wait_for(
        lambda: job.status() is JobStatus.RUNNING, timeout_s=backend.timeout_s, what="job running"
    )
    on_scheduler = backend.on_scheduler(job)
    assert on_scheduler.running()

    record = job.cancel(timeout_s=backend.timeout_s)
    assert (record.status, record.reason) == (JobStatus.CANCELLED, "cancelled by user")
    on_scheduler.assert_stopped()
    assert job.wait(timeout_s=5).status is JobStatus.CANCELLED
    assert final_result(backend, job)["status"] == "CANCELLED"
    assert job.cancel().status is JobStatus.CANCELLED  # cancelling twice changes nothing
    assert statuses(job.record()).count(JobStatus.CANCELLED) == 1


def test_an_array_of_ten_runs_at_most_three_at_a_time_with_a_log_per_index(
    backend: BackendHarness, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    started.mkdir()
    # Each element waits (up to 30 s) until two elements have started: an array run
    # one element at a time fails here instead of passing by luck of timing.
    barrier = (
        f'touch "{started}/$JOBGATE_ARRAY_INDEX"; n=0; '
        f'while [ "$(ls "{started}" | wc -l)" -lt 2 ]; do '
        "n=$((n + 1)); [ $n -lt 600 ] || exit 9; sleep 0.05; done; "
        "echo $JOBGATE_ARRAY_INDEX"
    )
    first = backend.array_first_index
    if first is None:
        # Today's behaviour, asserted so that this case fails, to be flipped, when the
        # backend learns arrays: the cluster's policy refuses an array before submission
        # (on this finding Gateway.submit raises PolicyBlockedError).
        spec = JobSpec(name="arr", command=barrier, array="0-9%3")
        profile = load_profile(str(backend.profile()))
        findings = backend.gateway.preflight(spec, backend.cluster, profile=profile)
        assert [(f.code, f.level) for f in findings] == [("array-unsupported", PolicyLevel.BLOCK)]
        assert "arrays are not supported" in findings[0].message
        return

    backend.start()
    indices = list(range(first, first + 10))
    job = backend.submit_named("arr", barrier, array=f"{first}-{first + 9}%3")
    record = job.wait(timeout_s=backend.timeout_s)
    assert record.status is JobStatus.SUCCEEDED
    assert [(e.index, e.status) for e in record.elements] == [
        (i, JobStatus.SUCCEEDED) for i in indices
    ]
    spans = [(e.started_at, e.finished_at) for e in record.elements]
    for start, _ in spans:
        assert sum(1 for s, f in spans if s is not None and f is not None and s <= start < f) <= 3
    for index in indices:
        assert "".join(job.logs(index=index)) == f"{index}\n"


def test_a_job_runs_after_the_job_it_depends_on_and_fails_when_that_one_fails(
    backend: BackendHarness, tmp_path: Path
) -> None:
    if not backend.supports_dependencies:
        # Today's behaviour, asserted so that this case fails, to be flipped, when the
        # backend learns dependencies: the cluster's policy refuses them before submission.
        spec = JobSpec(name="then", command="true", depends_on=[ids.new_job_id()])
        profile = load_profile(str(backend.profile()))
        findings = backend.gateway.preflight(spec, backend.cluster, profile=profile)
        blocks = [f.code for f in findings if f.level is PolicyLevel.BLOCK]
        assert blocks == ["depends-on-unsupported"]
        return

    backend.start()
    order = tmp_path / "order"
    first = backend.submit_named("a", f"sleep 1; echo a >> {order}")
    second = backend.submit_named("b", f"echo b >> {order}", depends_on=[first.id])
    assert second.wait(timeout_s=backend.timeout_s).status is JobStatus.SUCCEEDED
    assert order.read_text() == "a\nb\n"

    gate = tmp_path / "gate"
    broken = backend.submit_named("c", gated("exit 1", gate))
    after = backend.submit_named("d", "true", depends_on=[broken.id])
    wait_for(
        lambda: after.record(fresh=True).backend_id,
        timeout_s=backend.timeout_s,
        what="the dependent job on the scheduler",
    )
    gate.touch()
    assert broken.wait(timeout_s=backend.timeout_s).status is JobStatus.FAILED
    record = after.wait(timeout_s=backend.timeout_s)
    assert (record.status, record.reason) == (JobStatus.FAILED, "dependency failed")
    backend.on_scheduler(after).assert_stopped()  # it would wait there forever


def test_a_job_that_vanished_from_the_scheduler_fails_as_lost_and_never_succeeds(
    backend: BackendHarness,
) -> None:
    gone = backend.vanished()
    record = gone.lost.wait(timeout_s=backend.timeout_s)
    assert record.status is JobStatus.FAILED
    assert record.reason == backend.lost_reason
    assert statuses(record)[-2:] == [backend.status_before_lost, JobStatus.FAILED]
    assert JobStatus.SUCCEEDED not in statuses(record)
    if gone.exit_recorded is not None:  # it ended while jobgate was away, and said how
        done = gone.exit_recorded.wait(timeout_s=backend.timeout_s)
        assert (done.status, done.exit_code) == (JobStatus.SUCCEEDED, 0)


def submit_crowd(backend: BackendHarness, gate: Path, count: int) -> list[tuple[int, Job]]:
    """`count` gated jobs, `echo <i>` each, submitted from five threads at once."""
    jobs: list[tuple[int, Job]] = []
    lock = threading.Lock()
    # a slow gate: a hundred jobs checking every 50 ms would keep both CPUs busy forking
    command = gated("echo {i}", gate, check_s=1)

    def submit(first: int) -> None:
        for i in range(first, first + count // 5):
            job = backend.submit(JobSpec(name=f"j{i}", command=command.format(i=i), tags=["crowd"]))
            with lock:
                jobs.append((i, job))

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(0, count, count // 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(jobs, key=lambda pair: pair[0])


@pytest.mark.timeout(300)  # a hundred jobs share two CPUs with the scheduler and the worker
def test_a_hundred_jobs_finish_with_one_status_query_per_interval(
    backend: BackendHarness, tmp_path: Path
) -> None:
    backend.start(concurrency=4, **backend.crowd_settings)
    gateway, gate = backend.gateway, tmp_path / "go"
    began = time.monotonic()
    jobs = submit_crowd(backend, gate, 100)
    assert len(jobs) == 100
    ids = [job.id for _, job in jobs]
    wait_for(
        lambda: all(r and r.backend_id for r in gateway.store.get_many(ids)),
        timeout_s=120,
        what="all 100 jobs on the scheduler",
    )
    gate.touch()
    for i, job in jobs:
        assert job.wait(timeout_s=300).status is JobStatus.SUCCEEDED
        if i % backend.crowd_logs_every == 0:
            assert "".join(job.logs()) == f"{i}\n"
    elapsed = time.monotonic() - began
    assert len(gateway.list(tags={"crowd"}, statuses={JobStatus.SUCCEEDED}, limit=200)) == 100

    calls, intervals = backend.status_calls(), elapsed / backend.interval_s
    # one status query per poll step, plus a few from submits that looked for their own job
    assert calls <= intervals + 10, (calls, intervals)
    stats = gateway.store.query_stats(backend.cluster)
    per_query = stats["jobs_queried"] / gateway.scheduler_queries(backend.cluster)
    assert per_query >= 10, f"queries were not batched: {stats}"  # all 100 wait at the gate
