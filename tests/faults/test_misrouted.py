"""Tasks sent to another cluster's queue: the worker that gets one forwards it to the queue
of the job's cluster at once, and the job proceeds there; a task for a cluster nobody
serves is forwarded once and waits in that cluster's queue for one of its workers.

Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

from jobgate.client import Gateway, JobRecord, JobSpec, JobStatus, routing
from scripts import devstack
from tests.support.records import make_record, statuses
from tests.support.waiting import TIMEOUT_S, wait_for
from tests.support.workers import ProfileFactory, WorkerFactory

FORWARDED = "forwarded it to queue"


def test_a_submit_on_another_clusters_queue_is_forwarded_and_the_job_runs_there(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    alpha = start_worker(make_profile("alpha"), name="alpha")
    beta = start_worker(make_profile("beta"), name="beta")
    job = make_record(gateway.store, cluster="beta")

    started = time.monotonic()
    gateway.celery.send_task(routing.SUBMIT, args=[job.id], queue=routing.queue("alpha"))
    # Well before reconcile would re-send it (resubmit_after_s: 600 s).
    record = gateway.job(job.id).wait(timeout_s=TIMEOUT_S)
    took_s = time.monotonic() - started

    assert record.status is JobStatus.SUCCEEDED
    assert statuses(record).count(JobStatus.PENDING) == 1
    why = f"job {job.id} is on cluster beta, which this worker does not serve"
    assert f"{why}; {FORWARDED} jobgate.beta" in alpha.log_text()
    assert f"job {job.id} submitted to beta" in beta.log_text()
    assert "re-sent the submit" not in beta.log_text()

    # The client-facing tasks of the job, sent to alpha's queue, are answered from beta.
    answer = gateway.call(routing.MONITOR, [job.id], "alpha", timeout_s=TIMEOUT_S)
    assert JobRecord.model_validate(answer["record"]) == record
    request = [job.id, "stdout", 0, None, 1000]
    chunk = gateway.call(routing.LOGS, request, "alpha", timeout_s=TIMEOUT_S)
    assert chunk["complete"] is True
    answer = gateway.call(routing.CANCEL, [job.id], "alpha", timeout_s=TIMEOUT_S)
    assert JobRecord.model_validate(answer["record"]).status is JobStatus.SUCCEEDED
    assert alpha.log_text().count(FORWARDED) == 4
    assert alpha.running()
    assert beta.running()
    print(f"FIGURE misrouted-submit: forwarded, job done {took_s:.1f} s after the submit")


def test_a_task_for_a_cluster_nobody_serves_is_forwarded_once_and_waits_for_its_worker(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    alpha = start_worker(make_profile("alpha"), name="alpha")
    job = make_record(gateway.store, cluster="gamma")
    gamma_queue = f"{gateway.keys.prefix}{routing.queue('gamma')}"

    gateway.celery.send_task(routing.SUBMIT, args=[job.id], queue=routing.queue("alpha"))
    wait_for(lambda: gateway.store.redis.llen(gamma_queue) == 1, what="the forwarded submit")
    assert alpha.log_text().count(FORWARDED) == 1
    assert gateway.store.get(job.id).status is JobStatus.NEW

    gamma = start_worker(make_profile("gamma"), name="gamma")
    record = gateway.job(job.id).wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert statuses(record).count(JobStatus.PENDING) == 1
    assert f"job {job.id} submitted to gamma" in gamma.log_text()
    assert alpha.log_text().count(FORWARDED) == 1  # never came back to alpha


def test_a_worker_told_to_consume_another_clusters_queue_does_not_so_nothing_loops(
    gateway: Gateway, make_profile: ProfileFactory, tmp_path: Path
) -> None:
    """`celery ... worker -Q jobgate.gamma` serving alpha: were it to consume gamma's queue,
    a gamma task forwarded there would come back to it, again and again."""
    worker = devstack.Worker(tmp_path / "logs", gateway.url, [], tenant=gateway.tenant)
    worker.hostname = f"raw-{uuid.uuid4().hex[:6]}@127.0.0.1"
    env = {**os.environ, "JOBGATE_URL": gateway.url, "JOBGATE_TENANT": gateway.tenant,
           "JOBGATE_PROFILES": str(make_profile("alpha"))}  # fmt: skip
    worker._spawn(
        [sys.executable, "-m", "celery", "-A", "jobgate.workers.app", "worker",
         "-Q", "jobgate.gamma", "-n", worker.hostname, "--concurrency=1"],
        env=env,
    )  # fmt: skip
    try:
        worker.wait_ready(timeout_s=60)
        assert "not consuming jobgate.gamma:" in worker.log_text()
        job = make_record(gateway.store, cluster="gamma")
        gamma_queue = f"{gateway.keys.prefix}{routing.queue('gamma')}"
        for queue in ("gamma", "alpha"):
            gateway.celery.send_task(routing.SUBMIT, args=[job.id], queue=routing.queue(queue))
        # A job of alpha's, submitted after them, done: the worker has handled both.
        after = gateway.submit(JobSpec(name="after", command="true"), cluster="alpha")
        assert after.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
        assert gateway.store.redis.llen(gamma_queue) == 2
        assert worker.log_text().count(FORWARDED) == 1
        assert gateway.store.get(job.id).status is JobStatus.NEW
    finally:
        worker.kill()
