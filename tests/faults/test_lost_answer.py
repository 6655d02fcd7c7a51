"""A worker's answer whose notification the client never got (it was published while
the client's subscription to the result store was down, as in a Redis restart) still
reaches the client: it reads the stored answer too. Seen in CI: a `jobgate.logs` answered
in 0.07 s after a Redis crash timed out in the client 30 s later."""

from __future__ import annotations

import json
import threading
from typing import Any

from jobgate.client import Gateway, routing
from tests.support.waiting import wait_for


def queued_task_id(gateway: Gateway, queue: str) -> str | None:
    """The id of the one task message waiting in `queue` (kombu's list, under the prefix)."""
    messages = gateway.store.redis.lrange(f"{gateway.keys.prefix}{queue}", 0, -1)
    if not messages:
        return None
    (message,) = messages
    task_id: str = json.loads(message)["headers"]["id"]
    return task_id


def test_an_answer_stored_without_its_notification_still_reaches_the_caller(
    gateway: Gateway,
) -> None:
    answers: list[dict[str, Any]] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            gateway.call(routing.MONITOR, ["x"], "quiet", timeout_s=20, expires=False)
        ),
        daemon=True,
    )
    caller.start()
    task_id = wait_for(lambda: queued_task_id(gateway, routing.queue("quiet")),
                       what="the call's task in its queue")  # fmt: skip
    # What a worker stores, written the way a lost notification leaves it: no PUBLISH.
    backend = gateway.celery.backend
    meta = {"status": "SUCCESS", "result": {"answer": 42}, "traceback": None, "children": [],
            "date_done": None, "task_id": task_id}  # fmt: skip
    gateway.store.redis.set(backend.get_key_for_task(task_id), backend.encode(meta))
    caller.join(timeout=30)
    assert answers == [{"answer": 42}]
