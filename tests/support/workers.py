"""The shapes of the factory fixtures that write profiles and start workers (conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scripts import devstack

#: `make_profile(name="local", poll_s=0.2, **overrides)`: a local-backend profile's path.
ProfileFactory = Callable[..., Path]
#: `start_worker(*profiles, name=None, concurrency=2, env=None)`: a started worker.
WorkerFactory = Callable[..., devstack.Worker]
