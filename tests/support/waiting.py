"""Waiting without sleeping as synchronization: poll with a deadline, and gate files for
jobs that must be seen running before they may end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts import devstack

#: How long an end-to-end test waits for a job on the local backend or an emulator.
TIMEOUT_S = 60


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy, and return that; fail the test if not."""
    result = None

    def truthy() -> bool:
        nonlocal result
        result = check()
        return bool(result)

    try:
        devstack.wait_until(truthy, timeout_s, what)
    except RuntimeError as e:
        pytest.fail(str(e))
    return result


def gated(command: str, gate: Path, *, check_s: float = 0.05) -> str:
    """A shell command that waits for `gate` to exist (looking every `check_s`), then runs
    `command`: the test decides when the job may end, not the speed of the machine."""
    return f'while [ ! -e "{gate}" ]; do sleep {check_s:g}; done; {command}'
