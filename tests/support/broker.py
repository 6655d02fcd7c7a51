"""Reading the tasks waiting in a Celery queue straight from Redis, as kombu stores them
(a list under the tenant's prefix, newest first; each message a JSON envelope whose body
is the base64 of ``[args, kwargs, embed]``), so in-process tests can run what a step sent."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from jobgate.client.store import JobStore


@dataclass(frozen=True)
class QueuedTask:
    name: str
    args: list[Any]
    eta: str | None


def queued_tasks(store: JobStore, queue: str) -> list[QueuedTask]:
    """The tasks waiting in `queue`, oldest first."""
    raw = store.redis.lrange(f"{store.keys.prefix}{queue}", 0, -1)
    tasks = []
    for message in reversed(raw):
        envelope = json.loads(message)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        headers = envelope["headers"]
        tasks.append(QueuedTask(headers["task"], args, headers.get("eta")))
    return tasks
