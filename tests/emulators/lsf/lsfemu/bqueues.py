"""bqueues: the default table of the configured queues (all open and active)."""

from __future__ import annotations

import sys
from pathlib import Path

from . import cmdline, config
from .store import Store

FLAGS = {"-w", "-noheader", "-l", "-r"}
VALUED = {"-u", "-m", "-o"}
USAGE = "Usage: bqueues [-h] [-V] [-w] [-noheader] [queue_name ...]"
HEADER = "QUEUE_NAME      PRIO STATUS          MAX JL/U JL/P JL/H NJOBS  PEND   RUN  SUSP"
#: Which bqueues column counts a task of each state.
_BUCKETS = {"PEND": "PEND", "PSUSP": "PEND", "RUN": "RUN", "USUSP": "SUSP", "SSUSP": "SUSP"}
#: Priority shown for every queue (lsb.queues PRIORITY; LSF's own sample queues use 30).
PRIORITY = 30


def main(root: Path, argv: list[str]) -> int:
    parsed = cmdline.parse("bqueues", argv, FLAGS, VALUED, USAGE)
    known = config.queues()
    wanted = parsed.args or known
    unknown = [q for q in wanted if q not in known]
    for name in unknown:
        print(f"{name}: No such queue", file=sys.stderr)
    counts = {q: {"PEND": 0, "RUN": 0, "SUSP": 0} for q in known}
    for job in Store(root).all_jobs():
        for task in job.tasks:
            bucket = _BUCKETS.get(task.stat)
            if bucket is not None and job.queue in counts:
                counts[job.queue][bucket] += job.slots
    lines = [] if "-noheader" in parsed.flags else [HEADER]
    for name in (q for q in wanted if q in known):
        c = counts[name]
        njobs = c["PEND"] + c["RUN"] + c["SUSP"]
        shown = name if "-w" in parsed.flags or len(name) <= 15 else name[:14] + "*"
        lines.append(
            f"{shown:<16}{PRIORITY:>3}  {'Open:Active':<16}{'-':>3}{'-':>5}{'-':>5}{'-':>5}"
            f"{njobs:>6}{c['PEND']:>6}{c['RUN']:>6}{c['SUSP']:>6}"
        )
    if lines:
        print("\n".join(lines))
    return 255 if unknown else 0
