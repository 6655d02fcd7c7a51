"""Gateway.submit_many: many jobs recorded in one round trip and queued a batch per
message; all or nothing at validation and preflight."""

from __future__ import annotations

import pytest
import redis

from jobgate.client import Gateway, JobSpec, JobStatus, routing
from jobgate.client.errors import ClusterNotServedWarning, SpecInvalidError
from jobgate.client.gateway import SUBMIT_BATCH
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import ProfileFactory, WorkerFactory


def test_many_jobs_go_a_batch_per_message_and_all_run(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    count = SUBMIT_BATCH + 5
    specs = [JobSpec(name=f"many-{i}", command=f"echo {i}") for i in range(count)]
    with pytest.warns(ClusterNotServedWarning):  # no worker yet: the messages wait
        jobs = gateway.submit_many(specs, cluster="local")
    queue = f"{gateway.keys.prefix}{routing.queue('local')}"
    client = redis.Redis.from_url(gateway.url)
    assert client.llen(queue) == 2  # 25 + 5 jobs, two messages
    client.close()

    start_worker(make_profile())
    assert [job.record().name for job in jobs] == [f"many-{i}" for i in range(count)]
    for i, job in enumerate(jobs):
        assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
        assert "".join(job.logs()) == f"{i}\n"


def test_one_bad_spec_records_none_of_them(gateway: Gateway) -> None:
    before = len(gateway.list())
    specs: list[JobSpec | dict[str, object]] = [
        JobSpec(name="fine", command="true"),
        {"name": "bad", "cpus": "many"},
    ]
    with pytest.raises(SpecInvalidError, match=r"specs\[1\]"):
        gateway.submit_many(specs, cluster="local")
    with pytest.raises(SpecInvalidError, match=r"specs\[0\]: a job with inputs .* submit\(\)"):
        gateway.submit_many([JobSpec(name="in", command="true", inputs=["x"])], cluster="local")
    assert len(gateway.list()) == before
