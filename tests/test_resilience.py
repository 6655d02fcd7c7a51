"""Failures the gateway must survive: dead workers, duplicate chains, redelivery, Redis down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from celery.result import AsyncResult

from jobgate.client import (
    BrokerUnavailableError,
    ClusterNotServedWarning,
    Gateway,
    JobRecord,
    JobSpec,
    JobStatus,
    routing,
)
from scripts import devstack
from tests.support.records import make_record, statuses
from tests.support.waiting import TIMEOUT_S, gated, wait_for
from tests.support.workers import ProfileFactory, WorkerFactory


def test_worker_killed_while_a_job_runs_then_a_new_worker_finishes_it(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    profile = make_profile()
    first = start_worker(profile, name="doomed")
    runs, gate = tmp_path / "runs", tmp_path / "go"
    job = gateway.submit(
        JobSpec(name="survivor", command=gated(f"echo ran >> {runs}; echo done", gate)),
        cluster="local",
    )
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    first.kill()  # SIGKILL to the worker's whole process group, as in a crash
    gate.touch()  # the job, in its own session, goes on and finishes with no worker

    successor = start_worker(profile, name="successor")
    record = job.wait(timeout_s=TIMEOUT_S)
    assert "had active jobs and no polling chain; started one" in successor.log_text()
    assert record.status is JobStatus.SUCCEEDED
    assert runs.read_text() == "ran\n"
    assert Counter(statuses(record)) == {
        JobStatus.NEW: 1,
        JobStatus.PENDING: 1,
        JobStatus.RUNNING: 1,
        JobStatus.SUCCEEDED: 1,
    }
    assert "".join(job.logs()) == "done\n"
    final = AsyncResult(job.result_id, app=gateway.celery).get(timeout=TIMEOUT_S)
    assert JobRecord.model_validate(final) == record


def _poll_tokens_in_flight(gateway: Gateway, hostname: str) -> set[str]:
    """Chain tokens of the poll tasks a worker holds (countdown), has reserved or runs
    (a message still in the broker queue is not seen)."""
    inspect = gateway.celery.control.inspect(destination=[hostname], timeout=2)
    tokens = set()
    for reply in (inspect.scheduled(), inspect.reserved(), inspect.active()):
        for entries in (reply or {}).values():
            for entry in entries:
                task = entry.get("request", entry)
                if task["name"] == routing.POLL:
                    tokens.add(task["args"][1])
    return tokens


def test_two_poll_chains_started_at_once_leave_one(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    worker = start_worker(make_profile(poll_s=0.5), concurrency=4)
    gate = tmp_path / "go"
    job = gateway.submit(JobSpec(name="long", command=gated("true", gate)), cluster="local")
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
    lease = gateway.keys.poll_lease("local")
    assert gateway.store.redis.get(lease) is not None

    # Two more chains, started at the same moment, while the original one lives.
    gateway.store.redis.delete(lease)
    for token in ("chain-a", "chain-b"):
        gateway.celery.send_task(
            routing.POLL, args=["local", token, 0], queue=routing.poll_queue("local")
        )

    # Whichever of the three claims first, the other two find the lease taken and stop.
    def stats() -> dict[str, float]:
        return gateway.store.query_stats("local")

    wait_for(lambda: stats().get("polls_superseded", 0) >= 2, what="two chains to stop")
    token, seq = str(gateway.store.redis.get(lease)).split(":")

    def advanced() -> bool:
        held_token, held_seq = str(gateway.store.redis.get(lease)).split(":")
        assert held_token == token, "the lease changed hands: two chains are alive"
        return int(held_seq) >= int(seq) + 3

    wait_for(advanced, what="three more steps of the surviving chain")
    assert stats()["polls_superseded"] == 2
    assert _poll_tokens_in_flight(gateway, worker.hostname) <= {token}
    gate.touch()
    assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED


def test_a_redelivered_countdown_poll_does_not_double_a_transition(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    """A countdown longer than the visibility timeout: the broker redelivers the poll
    while the worker still holds it, both copies come due, and the lease lets one run."""
    worker = start_worker(
        make_profile(poll_s=3, lease_ttl_s=30),
        env={"JOBGATE_VISIBILITY_TIMEOUT_S": "1"},
    )
    assert "is not far below the broker's visibility timeout" in worker.log_text()
    gate = tmp_path / "go"
    job = gateway.submit(JobSpec(name="redo", command=gated("echo ok", gate)), cluster="local")
    wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running", timeout_s=TIMEOUT_S)
    wait_for(
        lambda: gateway.store.query_stats("local").get("polls_superseded", 0) >= 1,
        what="a redelivered poll to be turned away",
        timeout_s=TIMEOUT_S,
    )
    gate.touch()
    record = job.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert Counter(statuses(record)) == {
        JobStatus.NEW: 1,
        JobStatus.PENDING: 1,
        JobStatus.RUNNING: 1,
        JobStatus.SUCCEEDED: 1,
    }
    events = gateway.store.read_events(job.id, "0", block_ms=1)
    assert [e["status"] for _, e in events] == ["NEW", "PENDING", "RUNNING", "SUCCEEDED"]


def test_redis_down_is_a_clear_error_naming_the_url() -> None:
    port = devstack.free_port()
    gw = Gateway(f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(BrokerUnavailableError) as info:
        gw.submit(JobSpec(name="x", command="true"), cluster="local")
    message = str(info.value)
    assert message.startswith(f"Redis at redis://:***@127.0.0.1:{port}/0 is unavailable: ")
    assert "hunter2" not in message
    assert info.value.url == f"redis://:***@127.0.0.1:{port}/0"


def test_redis_lost_after_submit_is_a_clear_error(tmp_path: Path) -> None:
    server = devstack.RedisServer(tmp_path).start()
    try:
        gw = Gateway(server.url, owner="tester")
        with pytest.warns(ClusterNotServedWarning):
            job = gw.submit(JobSpec(name="x", command="true"), cluster="nobody-serves-this")
        assert job.status() is JobStatus.NEW
    finally:
        server.stop()
    for call in (job.status, lambda: job.wait(timeout_s=5), job.cancel):
        with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{server.port}"):
            call()


def test_pickle_messages_are_refused(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    """The refused message is as good as lost: the job, still NEW, gets its submit again
    from reconcile (after resubmit_after_s), as JSON, and runs once. Its id is not taken
    from the message's headers to fail it: they are the sender's word, not the body."""
    worker = start_worker(make_profile(resubmit_after_s=2), concurrency=1)
    # A recorded job whose only submit message is pickled, then a normal job, in one queue.
    pickled = make_record(gateway.store, cluster="local")
    sent = time.monotonic()
    gateway.celery.send_task(
        routing.SUBMIT, args=[pickled.id], queue=routing.queue("local"), serializer="pickle"
    )
    plain = gateway.submit(JobSpec(name="j", command="true"), cluster="local")
    assert plain.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    # The pickled message came first and was refused; reconcile re-sent the job's submit.
    assert "Refusing to deserialize untrusted content of type pickle" in worker.log_text()
    record = gateway.job(pickled.id).wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.SUCCEEDED
    assert statuses(record).count(JobStatus.PENDING) == 1  # submitted once
    assert "re-sent the submit of 1" in worker.log_text()
    took_s = time.monotonic() - sent
    print(
        f"FIGURE poison-pickle: refused, re-sent by reconcile, job done {took_s:.1f} s "
        "after its pickled submit (resubmit_after_s 2)"
    )


def test_celery_command_with_one_queue_serves_the_poll_queue_too(
    gateway: Gateway, make_profile: ProfileFactory, tmp_path: Path
) -> None:
    """`celery -A jobgate.workers.app worker -Q jobgate.local` is a full worker."""
    profile = make_profile()
    name = f"raw-{uuid.uuid4().hex[:6]}@127.0.0.1"
    worker = devstack.Worker(tmp_path / "logs", gateway.url, [], tenant=gateway.tenant)
    worker.hostname = name
    env = {
        **os.environ,
        "JOBGATE_URL": gateway.url,
        "JOBGATE_TENANT": gateway.tenant,
        "JOBGATE_PROFILES": str(profile),
    }
    worker._spawn(
        [sys.executable, "-m", "celery", "-A", "jobgate.workers.app", "worker",
         "-Q", "jobgate.local", "-n", name, "--concurrency=1"],
        env=env,
    )  # fmt: skip
    try:
        worker.wait_ready(timeout_s=60)
        job = gateway.submit(JobSpec(name="raw", command="echo raw"), cluster="local")
        assert job.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
        assert gateway.scheduler_queries("local") >= 1  # polls ran: the poll queue is served
    finally:
        worker.stop()


def test_a_worker_without_profiles_refuses_to_start(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOBGATE_PROFILES"}
    env["JOBGATE_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "jobgate.workers.app", "worker", "-Q", "x"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "no cluster profile to serve" in done.stderr + done.stdout


def test_a_submit_that_cannot_be_queued_is_marked_failed(
    gateway: Gateway, redis_url: str, tenant: str
) -> None:
    """The record is written but the queue refuses the message (here: an ACL that
    does not grant the queue keys). The job must not run later behind the caller's back."""
    admin = gateway.store.redis
    user = f"limited-{tenant}"
    admin.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=[f"jobgate:{tenant}:job*",
        f"jobgate:{tenant}:idx*", f"jobgate:{tenant}:finalize", f"jobgate:{tenant}:expiry",
        f"jobgate:{tenant}:active:*", f"jobgate:{tenant}:seen:*", f"jobgate:{tenant}:worker*"],
        channels=["*"],
        commands=["+@all"],
    )  # fmt: skip
    try:
        limited = Gateway(
            redis_url.replace("redis://", f"redis://{user}:pw@"), tenant=tenant, owner="tester"
        )
        with (
            pytest.raises(BrokerUnavailableError) as info,
            pytest.warns(ClusterNotServedWarning),
        ):
            limited.submit(JobSpec(name="x", command="true"), cluster="local")
        message = str(info.value)
        assert "no permissions" in message
        assert "was recorded but not queued, and is marked FAILED" in message
        assert ":pw@" not in message
        (record,) = gateway.list(cluster="local")
        assert record.status is JobStatus.FAILED
        assert record.reason == "not queued: the submit could not be sent"
        assert record.id in message
    finally:
        admin.acl_deluser(user)
