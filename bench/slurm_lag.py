"""Goal 5: completion lag, end to end, at the default profile's poll settings.

Round by round, alternating:
- gateway: `jobs` trivial jobs submitted through the gateway, timed from the first
  ``submit()`` until every record is finished (what a client waiting on them sees);
- raw drain: the same jobs submitted with plain ``sbatch``, timed from the first
  sbatch until squeue lists none of them pending, running or completing.
The gateway's records are read every 20 ms (one field each), squeue every 0.2 s.
The profile gives no poll intervals: jobgate's defaults apply
(``poll_interval_min_s`` / ``_max_s`` of ProfileBase).
"""

from __future__ import annotations

import time
from typing import Any

from slurm_goals import Figure, at_most_times, median, shown
from slurm_stack import Bench, Services

from jobgate.client import JobSpec
from jobgate.client.profile_schema import ProfileBase

CLUSTER = "lag"
OBSERVE_S = 0.2


def gateway_round(sv: Services, jobs: int, timeout_s: float = 3600) -> float:
    began = time.perf_counter()
    job_ids = [
        sv.gw.submit(JobSpec(name=f"lag-{i}", command="true"), CLUSTER).id for i in range(jobs)
    ]
    sv.wait_finished(job_ids, timeout_s)
    return time.perf_counter() - began


def raw_round(bench: Bench, jobs: int, timeout_s: float = 3600) -> float:
    began = time.perf_counter()
    for i in range(jobs):
        bench.slurm("sbatch", "--parsable", "-J", f"raw-{i}", "-o", "/dev/null", str(bench.script))
    deadline = time.monotonic() + timeout_s
    while bench.active_slurm_jobs():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Slurm did not drain {jobs} jobs within {timeout_s} s")
        time.sleep(OBSERVE_S)
    return time.perf_counter() - began


def run(bench: Bench, jobs: int, rounds: int, concurrency: int) -> tuple[list[Figure], Any]:
    profile = bench.profile(CLUSTER, "slurm")
    gateway_s: list[float] = []
    raw_s: list[float] = []
    with bench.gateway("lag", [profile], concurrency) as sv:
        for i in range(rounds):
            if i % 2 == 0:
                gateway_s.append(gateway_round(sv, jobs))
                bench.drain()
                raw_s.append(raw_round(bench, jobs))
            else:
                raw_s.append(raw_round(bench, jobs))
                gateway_s.append(gateway_round(sv, jobs))
                bench.drain()
    defaults = ProfileBase.model_fields
    intervals = (defaults["poll_interval_min_s"].default, defaults["poll_interval_max_s"].default)
    figures = [
        at_most_times(
            "lag",
            f"end to end, {jobs} trivial jobs",
            median(gateway_s),
            "s",
            median(raw_s),
            "raw sbatch drain",
            1.05,
        ),
        shown("lag", "  default poll interval (shortest)", float(intervals[0]), "s"),
    ]
    raw = {"jobs": jobs, "poll_interval_s": intervals, "gateway_s": gateway_s, "raw_s": raw_s}
    return figures, raw
