"""submit() queues jobs in Redis for drainers: a burst of submits shares a few Celery
messages, and no queued job is lost when a drain message or a drainer is."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from jobgate.client import Gateway, JobSpec, JobStatus, routing
from jobgate.client.errors import ClusterNotServedWarning
from jobgate.client.submit_queue import DRAINERS, JOBS_PER_DRAINER
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import ProfileFactory, WorkerFactory


@pytest.fixture
def raw(gateway: Gateway) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(gateway.url, decode_responses=True)
    yield client
    client.close()


def _submit(gateway: Gateway, count: int, name: str) -> list[str]:
    specs = [JobSpec(name=f"{name}-{i}", command=f"echo {i}") for i in range(count)]
    with pytest.warns(ClusterNotServedWarning):  # no worker yet: the jobs wait
        return [gateway.submit(spec, cluster="local").id for spec in specs]


def _messages(gateway: Gateway, raw: redis.Redis) -> list[str]:
    """The task names of the messages waiting in the local cluster's client queue."""
    queue = f"{gateway.keys.prefix}{routing.queue('local')}"
    return [json.loads(m)["headers"]["task"] for m in raw.lrange(queue, 0, -1)]


def test_a_burst_of_submits_sends_one_drain_message_per_drainer_and_every_job_runs(
    gateway: Gateway, raw: redis.Redis, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    count = DRAINERS * JOBS_PER_DRAINER + 5
    job_ids = _submit(gateway, count, "burst")

    assert _messages(gateway, raw) == [routing.DRAIN_SUBMITS] * DRAINERS  # not one per job
    assert raw.zrange(gateway.keys.submit_queue("local"), 0, -1) == job_ids  # in order

    start_worker(make_profile(), concurrency=DRAINERS)
    for i, job_id in enumerate(job_ids):
        job = gateway.job(job_id)
        assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
        assert "".join(job.logs()) == f"{i}\n"
    assert raw.zcard(gateway.keys.submit_queue("local")) == 0
    assert raw.zcard(gateway.keys.submit_claims("local")) == 0


def test_a_job_whose_drainer_died_with_it_claimed_is_submitted_once_its_claim_lapses(
    gateway: Gateway, raw: redis.Redis, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    (job_id,) = _submit(gateway, 1, "orphan")
    # A drainer takes the job and dies before submitting it: the claim is all that is left.
    assert gateway.submit_queue.claim("local", 1, None).job_id == job_id
    assert raw.zcard(gateway.keys.submit_queue("local")) == 0

    start_worker(make_profile())  # takes the drain message, finds only the claim

    record = gateway.job(job_id).wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert [t.status for t in record.history].count(JobStatus.PENDING) == 1


def test_jobs_whose_drain_message_was_lost_are_drained_by_reconcile(
    gateway: Gateway, raw: redis.Redis, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    job_ids = _submit(gateway, 3, "lost")
    raw.delete(f"{gateway.keys.prefix}{routing.queue('local')}")  # the message is gone
    raw.delete(gateway.keys.submit_drainer("local", 1))  # and its slot lapsed

    start_worker(make_profile(reconcile_interval_s=1.0))

    for job_id in job_ids:
        assert gateway.job(job_id).wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
