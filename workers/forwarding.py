"""A task for a cluster this worker does not serve goes on to that cluster's queue.

A worker consumes only the queues of the clusters it serves (worker_setup), so a message
it forwards never comes back to it: each message is forwarded at most once by each
worker, and then waits in its cluster's queue, as any queued task does, for a worker of
that cluster. The forwarded message keeps its task id and expiry (Celery's, and
jobgate's header), so a client waiting on the answer gets it from the worker that
serves the cluster.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Ignore

from jobgate.client import routing

log = logging.getLogger(__name__)


def forward(task: Task[Any, Any], queue: str, why: str) -> NoReturn:
    """Send the message `task` is running for to `queue`, unchanged, and drop this
    delivery without storing a result (the forwarded one stores it)."""
    request = task.request
    expires_at = request.get(routing.EXPIRES_AT_HEADER)
    task.app.send_task(
        task.name,
        args=list(request.args or ()),
        kwargs=dict(request.kwargs or {}),
        queue=queue,
        task_id=request.id,
        expires=request.expires,
        headers={} if expires_at is None else {routing.EXPIRES_AT_HEADER: expires_at},
    )
    log.warning("%s[%s]: %s; forwarded it to queue %s", task.name, request.id, why, queue)
    raise Ignore()
