"""Goal 4: cancelling many jobs through the gateway.

Slurm, round by round alternating with the reference:
- gateway: `jobs` held (PENDING) jobs submitted through the gateway; timed from the
  first cancel call until every record is CANCELLED. The scancel calls the worker made
  meanwhile (their count and summed run time) come from the PATH wrapper's log;
- reference: as many held jobs submitted with plain sbatch, cancelled by one
  ``scancel`` given every id, timed until it returns.
Local backend: `local_jobs` ``sleep 3600`` jobs, RUNNING, cancelled the same way.

A user cancels many jobs with one ``Gateway.cancel(ids)`` call: one task per cluster,
one ``scancel`` per chunk of ids.
"""

from __future__ import annotations

import time
from typing import Any

from slurm_goals import Figure, at_most, median, shown
from slurm_stack import Bench, Services

from jobgate.client import Job, JobSpec, JobStatus

SLURM, LOCAL = "held", "local"


def cancel_all(sv: Services, jobs: list[Job]) -> float:
    """Cancel every job; seconds until every record says CANCELLED."""
    began = time.perf_counter()
    sv.gw.cancel([job.id for job in jobs], timeout_s=600)
    sv.wait_status([job.id for job in jobs], JobStatus.CANCELLED)
    return time.perf_counter() - began


def gateway_round(bench: Bench, sv: Services, cluster: str, jobs: int) -> dict[str, float]:
    handles = [
        sv.gw.submit(JobSpec(name=f"cancel-{i}", command="sleep 3600"), cluster)
        for i in range(jobs)
    ]
    sv.wait_submitted([job.id for job in handles])
    if cluster == LOCAL:
        sv.wait_status([job.id for job in handles], JobStatus.RUNNING)
    since = time.time()
    seconds = cancel_all(sv, handles)
    calls = [c for c in bench.calls.calls(since) if c.command == "scancel"]
    bench.drain()
    return {
        "seconds": seconds,
        "scancel_calls": len(calls),
        "scancel_s": sum(c.seconds for c in calls),
    }


def scancel_round(bench: Bench, jobs: int) -> float:
    ids = [
        bench.slurm(
            "sbatch",
            "--parsable",
            "--hold",
            "-J",
            f"plain-{i}",
            "-o",
            "/dev/null",
            str(bench.script),
        ).strip()
        for i in range(jobs)
    ]
    began = time.perf_counter()
    bench.slurm("scancel", *ids)
    seconds = time.perf_counter() - began
    bench.drain()
    return seconds


def run(
    bench: Bench, jobs: int, local_jobs: int, rounds: int, concurrency: int
) -> tuple[list[Figure], Any]:
    held = bench.profile(SLURM, "slurm", slurm={"extra_args": ["--hold"]})
    local = bench.profile(LOCAL, "local", poll_interval_min_s=1, poll_interval_max_s=1)
    slurm_rounds: list[dict[str, float]] = []
    local_rounds: list[dict[str, float]] = []
    scancel_s: list[float] = []
    try:
        with bench.gateway("cancel", [held, local], concurrency) as sv:
            for i in range(rounds):
                if i % 2 == 0:
                    slurm_rounds.append(gateway_round(bench, sv, SLURM, jobs))
                    scancel_s.append(scancel_round(bench, jobs))
                else:
                    scancel_s.append(scancel_round(bench, jobs))
                    slurm_rounds.append(gateway_round(bench, sv, SLURM, jobs))
            for _ in range(rounds):
                local_rounds.append(gateway_round(bench, sv, LOCAL, local_jobs))
    finally:
        bench.cancel_everything()
    figures = [
        at_most(
            "cancel",
            f"cancel {jobs} Slurm jobs through the gateway",
            median([r["seconds"] for r in slurm_rounds]),
            "s",
            0.3,
            median(scancel_s),
            f"one scancel of {jobs} ids",
        ),
        shown(
            "cancel",
            "  scancel calls the worker made",
            median([r["scancel_calls"] for r in slurm_rounds]),
            "calls",
        ),
        shown(
            "cancel",
            "  their summed run time",
            median([r["scancel_s"] for r in slurm_rounds]),
            "s",
            median(scancel_s),
            f"one scancel of {jobs} ids",
        ),
        at_most(
            "cancel",
            f"cancel {local_jobs} local jobs through the gateway",
            median([r["seconds"] for r in local_rounds]),
            "s",
            5,
        ),
    ]
    raw = {
        "jobs": jobs,
        "local_jobs": local_jobs,
        "slurm_rounds": slurm_rounds,
        "scancel_s": scancel_s,
        "local_rounds": local_rounds,
    }
    return figures, raw
