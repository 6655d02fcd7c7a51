"""What one submit costs in Redis traffic: no Celery task events unless someone asked for
them, no subscription to a result the submit task never stores, and no round trip the
submit path can do without (issue 13: each costs the worker or the client CPU per job)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobgate.client import Gateway, JobSpec, JobStatus, lua
from tests.support.waiting import TIMEOUT_S, wait_for
from tests.support.workers import ProfileFactory, WorkerFactory


@pytest.fixture
def monitored(gateway: Gateway) -> Iterator[list[str]]:
    """Every command clients send Redis while the test runs (MONITOR; not the commands
    of Lua scripts)."""
    commands: list[str] = []
    client = redis.Redis.from_url(gateway.url, decode_responses=True)
    watching = threading.Event()
    stop = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            watching.set()
            for command in monitor.listen():
                if stop.is_set():
                    return
                if command.get("client_type") != "lua":
                    commands.append(command["command"])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert watching.wait(10)
    yield commands
    stop.set()
    client.ping()  # one more command wakes the monitor to see `stop`
    thread.join(10)
    client.close()


def test_a_submit_sends_no_task_events_and_subscribes_to_no_result(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    monitored: list[str],
) -> None:
    start_worker(make_profile())
    job = gateway.submit(JobSpec(name="quiet", command="true"), cluster="local")
    assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED

    seen = list(monitored)
    assert any(c.startswith("LPUSH") and "jobgate.local" in c for c in seen)  # it was watched
    events = [c for c in seen if c.startswith("PUBLISH") and ".celeryev/task." in c]
    assert events == []  # neither task-sent from the client nor received/started/... events
    results = [c for c in seen if c.startswith("SUBSCRIBE") and "celery-task-meta-" in c]
    assert results == []
    job_key = gateway.keys.job(job.id)
    transition = hashlib.sha1(lua.load("transition").encode()).hexdigest()  # noqa: S324
    assert f"EVALSHA {transition}" in " ".join(seen)
    assert not [c for c in seen if c.startswith("SCRIPT EXISTS") and transition in c]
    assert not [c for c in seen if c == f"HGET {job_key} cluster"]  # the message says it
    assert not [c for c in seen if c.startswith(f"HSET {job_key} findings")]  # unchanged
    assert not [c for c in seen if c.startswith(f"HGETALL {gateway.keys.secrets(job.id)}")]
    # The result's SETEX already gives the profile's result_expires_s (a day): no EXPIRE.
    result_key = f"{gateway.keys.prefix}celery-task-meta-{job.result_id}"
    wait_for(lambda: any(c.startswith(f"SETEX {result_key} 86400 ") for c in monitored),
             what="the final result stored")  # fmt: skip
    seen = list(monitored)
    assert not [c for c in seen if c.startswith(f"EXPIRE {result_key}")]


def test_a_poll_step_sends_no_transition_for_a_job_that_did_not_change(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    monitored: list[str],
    tmp_path: Path,
) -> None:
    start_worker(make_profile())
    go = tmp_path / "go"
    job = gateway.submit(
        JobSpec(name="steady", command=f"while [ ! -e {go} ]; do sleep 0.05; done"), "local"
    )
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="the job to run")
    transition = hashlib.sha1(lua.load("transition").encode()).hexdigest()  # noqa: S324
    job_key = gateway.keys.job(job.id)

    def transitions() -> int:
        return sum(1 for c in list(monitored) if c.startswith(f"EVALSHA {transition} 0 {job_key} "))

    def queries_after(steps: int) -> None:
        done = gateway.store.query_stats("local").get("queries", 0) + steps
        wait_for(lambda: gateway.store.query_stats("local").get("queries", 0) >= done,
                 what=f"{steps} more poll steps")  # fmt: skip

    queries_after(2)  # one of them may still record details (its start time)
    sent = transitions()
    queries_after(3)
    assert transitions() == sent  # three queries saw it RUNNING again: nothing sent
    go.touch()
    assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert transitions() > sent
    assert not gateway.store.redis.hexists(gateway.keys.seen("local"), job.id)
