"""Goal 2: the gateway with many active Slurm jobs (default 10,000).

The cluster is filled through the gateway with jobs that stay PENDING (the profile
adds ``sbatch --hold``), in steps: 10 jobs to warm the worker's pool up, the next `jobs`
on an empty cluster (the empty-cluster submit rate), up to 1,000, then up to `scale`
(the rate while filling).
At 1,000 and at `scale` the bench waits for `steps` poll steps and reads:
- the duration of each poll step, from Celery's "Task jobgate.poll[...] succeeded in
  Xs" lines in the worker's log (the whole task: lease, query, transitions);
- the squeue calls each step made, from the PATH wrapper's log (calls that began
  within the step's run);
- the worker's RSS (main process and pool children), and once before any job (idle).
The profile polls every 5 s (the default shortest interval), so that steps come often.
"""

from __future__ import annotations

import time
from typing import Any

from slurm_goals import Figure, at_least_times, at_most, median, shown, within
from slurm_stack import Bench, Services, poll_steps, tree_rss_bytes

from jobgate.client import JobSpec

CLUSTER = "held"
POLL_INTERVAL_S = 5.0
MB = 1024 * 1024
WARM_UP = 10


def fill(sv: Services, start: int, stop: int) -> float:
    """Submit jobs `start`..`stop`-1 and wait until all `stop` are active; the rate."""
    began = time.perf_counter()
    for i in range(start, stop):
        sv.gw.submit(JobSpec(name=f"held-{i}", command="sleep 3600"), CLUSTER)
    sv.wait_active(CLUSTER, stop)
    return (stop - start) / (time.perf_counter() - began)


def observe(bench: Bench, sv: Services, steps: int) -> dict[str, Any]:
    """Poll steps, their squeue calls, and the worker's RSS, over `steps` new steps."""
    since = time.time()
    sv.wait_polls(CLUSTER, steps + 1)  # the first may have begun before `since`
    found = [s for s in poll_steps(sv.worker.log_text(), since) if s.began >= since]
    calls = bench.calls.calls(since)
    per_step = [
        [c for c in calls if c.command == "squeue" and s.began <= c.began <= s.ended] for s in found
    ]
    return {
        "step_s": [round(s.seconds, 3) for s in found],
        "squeue_per_step": [len(c) for c in per_step],
        "squeue_s_per_step": [round(sum(c.seconds for c in cs), 3) for cs in per_step],
        "squeue_kinds": sorted({c.kind for cs in per_step for c in cs}),
        "rss_mb": tree_rss_bytes(sv.worker.pid) / MB,
    }


def run(
    bench: Bench, scale: int, jobs: int, steps: int, concurrency: int
) -> tuple[list[Figure], Any]:
    profile = bench.profile(
        CLUSTER,
        "slurm",
        slurm={"extra_args": ["--hold"]},
        poll_interval_min_s=POLL_INTERVAL_S,
        poll_interval_max_s=POLL_INTERVAL_S,
    )
    middle = min(1000, scale)
    empty_end = min(WARM_UP + jobs, middle)
    try:
        with bench.gateway("scale", [profile], concurrency) as sv:
            time.sleep(2)  # the worker settles after start-up
            idle_rss_mb = tree_rss_bytes(sv.worker.pid) / MB
            fill(sv, 0, WARM_UP)  # the pool processes' first tasks
            empty_rate = fill(sv, WARM_UP, empty_end)
            filling = (empty_end, middle, fill(sv, empty_end, middle) if middle > empty_end else 0)
            at_middle = observe(bench, sv, steps)
            if scale > middle:
                filling = (middle, scale, fill(sv, middle, scale))
            at_scale = observe(bench, sv, steps)
    finally:
        bench.cancel_everything()
    first, last, filling_rate = filling
    step_s = median(at_scale["step_s"])
    squeue_calls = median([float(n) for n in at_scale["squeue_per_step"]])
    figures = [
        at_least_times(
            "scale",
            f"submit rate filling {first} -> {last} active",
            filling_rate,
            "jobs/s",
            empty_rate,
            f"{WARM_UP} -> {empty_end} on an empty cluster",
            0.8,
        ),
        at_most(
            "scale",
            f"one poll step at {scale} active",
            step_s,
            "s",
            0.5,
            median(at_middle["step_s"]),
            f"at {middle}",
        ),
        at_most(
            "scale",
            f"squeue calls per poll step at {scale}",
            squeue_calls,
            "calls",
            1,
            median([float(n) for n in at_middle["squeue_per_step"]]),
            f"at {middle}",
        ),
        shown(
            "scale",
            f"squeue time per poll step at {scale}",
            median(at_scale["squeue_s_per_step"]),
            "s",
        ),
        within(
            "scale",
            f"worker RSS at {scale} active",
            at_scale["rss_mb"],
            "MB",
            at_middle["rss_mb"],
            f"RSS at {middle}",
            0.1,
        ),
        shown("scale", "worker RSS idle", idle_rss_mb, "MB"),
    ]
    raw = {
        "scale": scale,
        "empty_rate_per_s": round(empty_rate, 1),
        "filling": {"from": first, "to": last, "per_s": round(filling_rate, 1)},
        "idle_rss_mb": round(idle_rss_mb, 1),
        f"at_{middle}": at_middle,
        f"at_{scale}": at_scale,
    }
    return figures, raw
