"""Fault switches: make commands slow, hang, or act as if mbatchd were down or busy.

Each switch is an ``LSF_EMULATOR_*`` environment variable; a key of the same name in
``$LSF_EMULATOR_DIR/faults.json`` overrides it (null or "" turns it off), so a test
can flip switches while a long-running process keeps calling the commands.

Counted switches (``bjobs:2``) are used up through a record in the state directory,
so "the next 2 calls" holds across processes. Rewriting faults.json re-arms them.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import config
from .errors import LsfError
from .store import locked, read_json, write_json

DELAY = "LSF_EMULATOR_DELAY_S"
HANG = "LSF_EMULATOR_HANG"
NOT_RESPONDING = "LSF_EMULATOR_NOT_RESPONDING"
PROCESSING = "LSF_EMULATOR_PROCESSING"
ZOMBI = "LSF_EMULATOR_ZOMBI"
VANISH = "LSF_EMULATOR_VANISH"

#: lsf.conf LSB_MBD_BUSY_MSG default: mbatchd too busy to answer.
BUSY_MSG = "LSF is processing your request. Please wait ..."
#: Printed by the batch library for each failed attempt to reach mbatchd.
NOT_RESPONDING_MSG = "batch system daemon not responding ... still trying"


def _json_settings(root: Path) -> tuple[dict[str, Any], str]:
    """faults.json's content and a token that changes whenever the file is rewritten."""
    path = root / "faults.json"
    try:
        stat = path.stat()
        stamp = f"{stat.st_ino}.{stat.st_mtime_ns}.{stat.st_size}"
        data = read_json(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}, ""
    return (data if isinstance(data, dict) else {}), stamp


def setting(root: Path, name: str) -> tuple[str, str]:
    """A switch's value ("" when off) and where it came from (for counting its uses)."""
    data, stamp = _json_settings(root)
    if name in data:
        value = data[name]
        return ("" if value is None else str(value)).strip(), f"json@{stamp}"
    return os.environ.get(name, "").strip(), "env"


def glob_setting(root: Path, name: str) -> list[str]:
    """A switch holding job-name globs (comma-separated)."""
    value, _ = setting(root, name)
    return [part.strip() for part in value.split(",") if part.strip()]


def matches(root: Path, name: str, job_name: str) -> bool:
    return any(fnmatch.fnmatchcase(job_name, pattern) for pattern in glob_setting(root, name))


def _uses(root: Path) -> dict[str, int]:
    try:
        used: dict[str, int] = read_json(root / "faults-used.json")
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return used


def _targets(root: Path, name: str, command: str) -> list[tuple[str, int | None]]:
    """(use-count key, how many calls; None for always) of each part of a counted switch
    that applies to ``command``."""
    value, source = setting(root, name)
    found: list[tuple[str, int | None]] = []
    for part in value.split(","):
        target, _, count = part.strip().partition(":")
        if target.strip() not in {command, "all", "*"}:
            continue
        count = count.strip() or "always"
        key = f"{name}|{source}|{part.strip()}|{command}"
        if count == "always":
            found.append((key, None))
        elif count.isdigit():
            found.append((key, int(count)))
    return found


def _counted(root: Path, name: str, command: str) -> bool:
    """Whether a ``command:count`` switch applies to this call; uses one count if so."""
    for key, limit in _targets(root, name, command):
        if limit is None:
            return True
        with locked(root / "faults-used.lock"):
            used = _uses(root)
            if used.get(key, 0) >= limit:
                continue
            used[key] = used.get(key, 0) + 1
            write_json(root / "faults-used.json", used)
        return True
    return False


def remaining(root: Path, command: str) -> str:
    """How many more calls of ``command`` the counted switches will hit ("always" if endless)."""
    left = 0
    used = _uses(root)
    for name in (HANG, NOT_RESPONDING, PROCESSING):
        for key, limit in _targets(root, name, command):
            if limit is None:
                return "always"
            left += max(0, limit - used.get(key, 0))
    return str(left)


def apply(root: Path, command: str) -> None:
    """Act out whatever switches apply to this call of ``command``, before its work."""
    delay, _ = setting(root, DELAY)
    with contextlib.suppress(ValueError):
        if float(delay or 0) > 0:
            time.sleep(float(delay))
    if _counted(root, HANG, command):
        while True:  # until killed, as a command stuck on an unresponsive mbatchd
            time.sleep(3600)
    if _counted(root, NOT_RESPONDING, command):
        _not_responding()
    if _counted(root, PROCESSING, command):
        _processing()


def _retry_for(message: str) -> None:
    """Print ``message`` once per attempt, as the batch library does, for retry_s()."""
    deadline = time.monotonic() + config.retry_s()
    while True:
        print(message, file=sys.stderr, flush=True)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(1.0, left))


def _not_responding() -> None:
    """mbatchd is down: retry, then give up (real LSF retries LSB_NTRIES times, by default
    for ever; the emulator stops after retry_s() so that no caller hangs on it)."""
    _retry_for(NOT_RESPONDING_MSG)
    raise LsfError("", status=255)


def _processing() -> None:
    """mbatchd is busy: wait and retry, then carry on once it answers, as LSF does."""
    _retry_for(BUSY_MSG)
