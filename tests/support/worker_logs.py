"""Reading a Celery worker's log: when its lines were written, and how long the worker
took to get its broker connection back."""

from __future__ import annotations

import re
from datetime import datetime

from scripts import devstack

#: When a line of a Celery worker log was written.
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ")


def log_times(log: str, text: str) -> list[datetime]:
    """When each line of `log` that contains `text` was written."""
    times = []
    for line in log.splitlines():
        stamp = _LOG_TIME.match(line)
        if stamp and text in line:
            times.append(datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    return times


def reconnect_s(worker: devstack.Worker) -> float:
    """Seconds from the worker losing its broker connection to having it again."""
    log = worker.log_text()
    (lost,) = log_times(log, "Connection to broker lost")
    back = [t for t in log_times(log, "Connected to ") if t > lost]
    assert back, f"the worker never reconnected:\n{log[-3000:]}"
    return (back[0] - lost).total_seconds()
