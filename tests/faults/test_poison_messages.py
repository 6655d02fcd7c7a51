"""Poison messages: whatever lands on a worker's queue (or its broadcast channel), the
worker refuses it with a clear log line and goes on serving. Entries that are not
messages at all, bodies that are not JSON, content types other than JSON, unknown task
names, arguments of the wrong shape, job ids that do not exist.

Measured figures are printed as ``FIGURE`` lines (``pytest -s``) for docs/reliability.md.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus, SpecInvalidError, ids, routing
from tests.support.waiting import TIMEOUT_S
from tests.support.workers import ProfileFactory, WorkerFactory


def envelope(gateway: Gateway, task: str, args: list[Any]) -> dict[str, Any]:
    """The kombu envelope Celery writes for `task(*args)`, read back from a queue nobody
    consumes, to be altered into a poison message."""
    queue = f"jobgate.unserved-{uuid.uuid4().hex[:8]}"
    gateway.celery.send_task(task, args=args, queue=queue)
    raw = gateway.store.redis.rpop(f"{gateway.keys.prefix}{queue}")
    assert raw is not None
    message: dict[str, Any] = json.loads(raw)
    message["headers"]["id"] = message["properties"]["correlation_id"] = str(uuid.uuid4())
    return message


def test_poison_messages_are_refused_and_the_worker_keeps_serving(
    gateway: Gateway, make_profile: ProfileFactory, start_worker: WorkerFactory
) -> None:
    worker = start_worker(make_profile(), concurrency=1)
    queue = routing.queue("local")
    queue_key = f"{gateway.keys.prefix}{queue}"
    redis = gateway.store.redis

    not_json_body = envelope(gateway, routing.SUBMIT, [ids.new_job_id()])
    not_json_body["body"] = base64.b64encode(b"{not json").decode()
    text_plain = envelope(gateway, routing.SUBMIT, [ids.new_job_id()])
    text_plain["content-type"] = "text/plain"
    for entry in (b"not a message at all", b"[1, 2]", b'{"body": "x"}'):
        redis.lpush(queue_key, entry)
    for message in (not_json_body, text_plain):
        redis.lpush(queue_key, json.dumps(message))
    pidbox = f"{gateway.keys.prefix}/0.celery.pidbox"  # the workers' broadcast channel
    assert gateway.url.endswith("/0")
    for broadcast in (b"[1, 2]", b"not json"):
        assert redis.publish(pidbox, broadcast) == 1  # the worker listens
    gateway.celery.send_task("jobgate.no-such-task", args=["x"], queue=queue)
    missing = ids.new_job_id()
    wrong_shapes: list[tuple[list[Any], dict[str, Any]]] = [
        ([], {}),
        ([5], {}),
        (["../../etc"], {}),
        ([missing], {}),
        ([missing, "extra", "more"], {}),
        ([], {"job_id": missing, "bogus": 1}),
    ]
    for args, kwargs in wrong_shapes:
        gateway.celery.send_task(routing.SUBMIT, args=args, kwargs=kwargs, queue=queue)
    poll_queue = routing.poll_queue("local")
    gateway.celery.send_task(routing.POLL, args=["local"], queue=poll_queue)
    gateway.celery.send_task(routing.RECONCILE, args=["Not A Cluster"], queue=poll_queue)
    with pytest.raises(SpecInvalidError, match=r"jobgate\.monitor: missing a required argument"):
        gateway.call(routing.MONITOR, [], "local", timeout_s=TIMEOUT_S)
    with pytest.raises(SpecInvalidError, match=r"jobgate\.cancel: argument job_id=5: .*string"):
        gateway.call(routing.CANCEL, [5], "local", timeout_s=TIMEOUT_S)

    started = time.monotonic()
    plain = gateway.submit(JobSpec(name="after", command="echo after"), cluster="local")
    assert plain.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert "".join(plain.logs()) == "after\n"
    assert worker.running()
    assert redis.llen(queue_key) == 0  # every poison message was taken off the queue
    assert gateway.celery.control.ping(destination=[worker.hostname], timeout=5)

    log = worker.log_text()
    assert "Unrecoverable error" not in log
    assert log.count("dropped a queue entry that is not a message") == 3
    assert log.count("dropped a broadcast that is not a message") == 1
    assert "Cannot process event on channel" in log  # kombu's own, for the one not JSON
    assert "Can't decode message body" in log
    assert "Refusing to deserialize untrusted content of type text/plain" in log
    assert "Received unregistered task of type 'jobgate.no-such-task'" in log
    refused = [line for line in log.splitlines() if "refused jobgate.submit[" in line]
    assert len(refused) == 5, refused
    assert any("missing a required argument: 'job_id'" in line for line in refused)
    assert any("argument job_id=5: Input should be a valid string" in line for line in refused)
    assert any("job id '../../etc' is not a jobgate id" in line for line in refused)
    assert any("too many positional arguments" in line for line in refused)
    assert any("unexpected keyword argument 'bogus'" in line for line in refused)
    assert f"submit of job {missing}: no such record" in log
    assert "refused jobgate.poll[" in log
    assert "refused jobgate.reconcile[" in log
    assert "argument cluster='Not A Cluster': String should match pattern" in log
    assert "raised unexpected" not in log  # no task's own code met the bad arguments
    took_s = time.monotonic() - started
    print(
        "FIGURE poison-messages: 18 poison messages refused, worker up, "
        f"the next job done {took_s:.1f} s after it was submitted"
    )
