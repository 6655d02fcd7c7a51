"""Stand-ins on PATH that count the calls of a scheduler command (and log their arguments)
and run the real one, or, while a fault is armed (`arm`), misbehave the way a scheduler
command can."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class Fault(StrEnum):
    """What a shim does instead of answering as the real command."""

    HANG = "hang"  # never answers: sleeps until killed (its pid goes to the `hung` file)
    PARTIAL = "partial"  # prints the first line of the real answer, then exits 1
    GARBAGE = "garbage"  # the real answer with a line of noise after its first line
    NOISE = "noise"  # the real answer with a line of noise before and after it
    ANSWER_LOST = "answer-lost"  # does the real command's work, then hangs unanswered


#: What a GARBAGE shim adds to the real answer: binary noise and a field separator.
GARBAGE_LINE = "\\033[0m\\001 slurm_load_jobs: ?? |garbage"

_SHIM = """#!/bin/sh
printf '%s\\n' "$*" >> {calls}
{delay}case "$(cat {fault} 2>/dev/null)" in
  hang) echo $$ >> {hung}; exec sleep 3600 ;;
  noise) printf "{garbage} {{\n"; {real} "$@"; status=$?; echo "}} noise"; exit $status ;;
  answer-lost) {real} "$@" > /dev/null; echo $$ >> {hung}; exec sleep 3600 ;;
  partial) {real} "$@" | head -n 1; exit 1 ;;
  garbage) {real} "$@" | awk 'NR == 2 {{ printf "{garbage}\\n" }} {{ print }}'; exit 0 ;;
esac
exec {real} "$@"
"""


def counting_shim(directory: Path, real: Path, *, delay_s: float = 0.0) -> Path:
    """A stand-in for the command `real`, in `directory` (to put first on PATH) under the
    same name, that counts its calls and runs the real one (`delay_s` later: a slow
    scheduler); returns the count file."""
    directory.mkdir()
    calls = directory / "calls"
    calls.touch()
    shim = directory / real.name
    delay = f"sleep {delay_s:g}\n" if delay_s else ""
    shim.write_text(_SHIM.format(calls=calls, fault=directory / "fault", delay=delay,
                                 hung=directory / "hung", real=real,
                                 garbage=GARBAGE_LINE))  # fmt: skip
    shim.chmod(0o755)
    return calls


def count(calls: Path) -> int:
    """How many calls a counting shim has seen."""
    return len(arguments(calls))


def arguments(calls: Path) -> list[list[str]]:
    """The arguments of each call a counting shim has seen, oldest first (split on
    whitespace: for telling calls apart, not for arguments that hold spaces)."""
    return [line.split() for line in calls.read_text().splitlines()]


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


def arm(calls: Path, fault: Fault | None) -> None:
    """Make the shim of this count file misbehave from its next call (None: behave)."""
    path = calls.parent / "fault"
    path.with_suffix(".tmp").write_text(fault.value if fault else "")
    path.with_suffix(".tmp").rename(path)


def hung_pids(calls: Path) -> list[int]:
    """The process ids of the shim's calls that hung."""
    hung = calls.parent / "hung"
    return [int(pid) for pid in hung.read_text().split()] if hung.exists() else []
