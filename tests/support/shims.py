"""Stand-ins on PATH that count the calls of a scheduler command and run the real one."""

from __future__ import annotations

from pathlib import Path


def counting_shim(directory: Path, real: Path) -> Path:
    """A stand-in for the command `real`, in `directory` (to put first on PATH) under the
    same name, that counts its calls and runs the real one; returns the count file."""
    directory.mkdir()
    calls = directory / "calls"
    calls.touch()
    shim = directory / real.name
    shim.write_text(f'#!/bin/sh\necho x >> {calls}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    return calls


def count(calls: Path) -> int:
    """How many calls a counting shim has seen."""
    return len(calls.read_text().split())
