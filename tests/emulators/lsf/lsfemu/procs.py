"""Processes of a job, seen through /proc: liveness, memory, CPU time, signals.

A task's top process leads its own session and process group (pid = pgid = sid).
Its "tree" is every live process in that session or descended from the top one.
Zombies count as dead: PID 1 on some machines reaps orphans late.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    cpu_ticks: int
    threads: int
    rss_pages: int


def proc_info(pid: int) -> ProcInfo | None:
    """One process's /proc/<pid>/stat, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2 :].split()
    return ProcInfo(
        pid=pid,
        state=rest[0],
        ppid=int(rest[1]),
        pgrp=int(rest[2]),
        session=int(rest[3]),
        cpu_ticks=sum(int(ticks) for ticks in rest[11:15]),  # own and reaped children's
        threads=int(rest[17]),
        rss_pages=int(rest[21]),
    )


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    if pid <= 0:
        return False
    info = proc_info(pid)
    return info is not None and info.state not in {"Z", "X"}


def all_processes() -> list[ProcInfo]:
    infos = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = proc_info(int(entry))
            if info is not None:
                infos.append(info)
    return infos


def tree(top: int, infos: list[ProcInfo] | None = None) -> list[ProcInfo]:
    """Live processes of the task whose top process is ``top``."""
    infos = all_processes() if infos is None else infos
    children: dict[int, list[ProcInfo]] = {}
    for info in infos:
        children.setdefault(info.ppid, []).append(info)
    found = {info.pid: info for info in infos if info.session == top or info.pgrp == top}
    stack = [top]
    while stack:
        for child in children.get(stack.pop(), []):
            found.setdefault(child.pid, child)
            stack.append(child.pid)
    top_info = next((info for info in infos if info.pid == top), None)
    if top_info is not None:
        found[top] = top_info
    return [info for info in found.values() if info.state not in {"Z", "X"}]


def _children(pid: int) -> list[int] | None:
    """Child PIDs from /proc/<pid>/task/*/children; None if the kernel does not offer it."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in threads:
        try:
            found += [
                int(child) for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            ]
        except FileNotFoundError:
            if tid == str(pid) and Path(f"/proc/{pid}").exists():
                return None
        except OSError:
            continue
    return found


def descendants(top: int) -> list[ProcInfo]:
    """The live top process and its descendants: cheap enough to sample several times a second.

    Unlike tree(), this misses processes that left the tree (orphans adopted by init).
    """
    if _children(top) is None:
        return tree(top)
    found: list[ProcInfo] = []
    stack = [top]
    while stack:
        pid = stack.pop()
        info = proc_info(pid)
        if info is None:
            continue
        if info.state not in {"Z", "X"}:
            found.append(info)
        stack += _children(pid) or []
    return found


def usage(top: int) -> tuple[int, float, int, int]:
    """Resident memory (KB), CPU seconds, processes and threads of the task's live tree."""
    procs = descendants(top)
    rss_kb = sum(info.rss_pages for info in procs) * PAGE_KB
    cpu_s = sum(info.cpu_ticks for info in procs) / CLOCK_TICKS
    return rss_kb, cpu_s, len(procs), sum(info.threads for info in procs)


def signal_task(top: int, signum: int) -> None:
    """Send ``signum`` to the task's process group and to any process that left it."""
    if top <= 0:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(top, signum)
    for info in tree(top):
        if info.pgrp != top:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(info.pid, signum)
