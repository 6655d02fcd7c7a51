"""Stand-ins on PATH that count the calls of a scheduler command and run the real one."""

from __future__ import annotations

from pathlib import Path


def counting_shim(directory: Path, real: Path, *, delay_s: float = 0.0) -> Path:
    """A stand-in for the command `real`, in `directory` (to put first on PATH) under the
    same name, that counts its calls and runs the real one (`delay_s` later: a slow
    scheduler); returns the count file."""
    directory.mkdir()
    calls = directory / "calls"
    calls.touch()
    shim = directory / real.name
    delay = f"sleep {delay_s:g}\n" if delay_s else ""
    shim.write_text(f'#!/bin/sh\necho x >> {calls}\n{delay}exec {real} "$@"\n')
    shim.chmod(0o755)
    return calls


def count(calls: Path) -> int:
    """How many calls a counting shim has seen."""
    return len(calls.read_text().split())


def killing_shim(directory: Path, real: Path, *, kill: str, after_answer: bool) -> Path:
    """A stand-in for the command `real`, in `directory` (to put first on PATH), that
    SIGKILLs `kill` (the argument of sh's ``kill -9``: ``$PPID`` for the process that
    ran the command, ``-<pgid>`` for a process group) once, when armed: before running
    the real command, or (`after_answer`) after the real one answered, so that its
    answer never reaches the caller. Returns the arming file: create it to arm the shim;
    the shim renames it to ``fired`` (holding the real command's answer) as it fires."""
    directory.mkdir()
    armed, fired = directory / "armed", directory / "fired"
    fire = f'mv "{armed}" "{fired}" 2>/dev/null'
    if after_answer:
        body = (
            f'out=$({real} "$@"); rc=$?\n'
            f"if [ $rc -eq 0 ] && {fire}; then\n"
            f'  printf "%s\\n" "$out" > "{fired}"; kill -9 {kill}; exit 1\n'
            "fi\n"
            'printf "%s\\n" "$out"; exit $rc\n'
        )
    else:
        body = f'if {fire}; then kill -9 {kill}; exit 1; fi\nexec {real} "$@"\n'
    shim = directory / real.name
    shim.write_text(f"#!/bin/sh\n{body}")
    shim.chmod(0o755)
    return armed
