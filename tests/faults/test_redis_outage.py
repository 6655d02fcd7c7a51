"""Redis down for a while: clients following a job wait it out, a submit fails at once
with a clear error and writes nothing, and a client gives up once the outage outlasts
what it was told to tolerate."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobgate.client import BrokerUnavailableError, ClusterNotServedWarning, JobSpec, JobStatus
from scripts import devstack
from tests.support.local import LocalHarness
from tests.support.waiting import gated, wait_for

OUTAGE_S = 30


@pytest.mark.timeout(240)
def test_wait_and_followed_logs_ride_out_a_thirty_second_outage_and_submit_fails_fast(
    local_backend: LocalHarness, own_redis: devstack.RedisServer, tmp_path: Path
) -> None:
    backend, gateway, gate = local_backend, local_backend.gateway, tmp_path / "go"
    backend.start()
    job = backend.submit_named("long", f"echo started; {gated('echo done', gate)}")
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="the job running")
    seen: dict[str, Any] = {}
    followers = [
        threading.Thread(target=lambda: seen.update(record=job.wait(timeout_s=200))),
        threading.Thread(target=lambda: seen.update(logs="".join(job.logs(follow=True)))),
    ]
    for follower in followers:
        follower.start()
    wait_for(lambda: (backend.work_dir / job.id / f"{job.id}.out").read_text() == "started\n",
             what="the job's first line")  # fmt: skip

    own_redis.stop()
    gate.touch()  # the job ends while Redis is down
    began = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="is unavailable"):
        gateway.submit(JobSpec(name="during", command="true"), cluster=backend.cluster)
    refused_s = time.monotonic() - began
    time.sleep(OUTAGE_S)  # the fault itself: Redis stays down this long
    own_redis.start()

    for follower in followers:
        follower.join(timeout=120)
        assert not follower.is_alive(), "a follower did not come back after the outage"
    assert seen["record"].status is JobStatus.SUCCEEDED
    assert seen["logs"] == "started\ndone\n"
    assert [r.id for r in gateway.list()] == [job.id]  # the refused submit left nothing
    print(f"FIGURE redis-down {OUTAGE_S} s: wait() and logs -f came back, "
          f"submit refused in {refused_s:.2f} s")  # fmt: skip


def test_a_client_gives_up_once_the_outage_outlasts_its_tolerance(
    local_backend: LocalHarness, own_redis: devstack.RedisServer
) -> None:
    with pytest.warns(ClusterNotServedWarning):  # no worker: the job stays NEW
        job = local_backend.submit_named("queued", "true")
    own_redis.stop()
    # the outage's limit, not the (later) deadline: that one says "at the deadline"
    with pytest.raises(BrokerUnavailableError, match=r"unavailable for \d+ s, waiting for job"):
        job.wait(timeout_s=60, outage_s=2)
