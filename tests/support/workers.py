"""The shapes of the factory fixtures that write profiles and start workers (conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scripts import devstack
from tests.support.waiting import wait_for

#: `make_profile(name="local", poll_s=0.2, **overrides)`: a local-backend profile's path.
ProfileFactory = Callable[..., Path]
#: `start_worker(*profiles, name=None, concurrency=2, env=None)`: a started worker.
WorkerFactory = Callable[..., devstack.Worker]


def wait_for_task_events(worker: devstack.Worker) -> None:
    """Until the worker sends task events: they are off by default, and Flower turns them
    on (its `enable_events` control command, every 5 s)."""
    wait_for(
        lambda: "Events of group {task} enabled by remote" in worker.log_text(),
        what=f"Flower to turn on the task events of {worker.hostname}",
    )
