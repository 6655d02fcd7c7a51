"""Goal 1: submit rate through the gateway vs a plain sbatch loop and PSI/J, same Slurm.

Each round runs the three one after another, in an order that alternates round by
round; the queue is drained after each. Figures are medians over the rounds.
- gateway: N ``gw.submit()`` calls, timed until every job has its Slurm id (the
  worker's sbatch has returned), a worker of `concurrency` processes serving them;
- gateway batch: one ``gw.submit_many()`` of the N jobs, timed the same way;
- gateway rest: N ``gw.submit()`` to a profile with ``submit_via: slurmrestd`` (where
  slurmrestd is installed), the same Slurm;
- plain: ``sbatch --parsable`` N times in a row from this process;
- PSI/J 0.9.11: N ``executor.submit()`` in a row, in a subprocess of a venv of its
  own (bench/.psij-venv, made here on first use: PSI/J is no jobgate dependency).
CPU per job: the whole machine's busy CPU time over the round divided by N (as the
issue measured it; other users' load counts too), and the CPU time of the processes
involved (this one with its children, the worker's, Redis, munged, slurmctld and slurmd,
which also starts the jobs that begin during the round) / N. Both grow with a round's
length when the machine is loaded: time-driven work (poll steps, Celery's own loop,
job starts) is spread over fewer jobs per second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from slurm_goals import Figure, at_least_times, median, shown
from slurm_stack import ROOT, Bench, Services, busy_cpu_s

from jobgate.client import JobSpec

PSIJ_VERSION = "0.9.11"
PSIJ_VENV = ROOT / "bench" / ".psij-venv"
CLUSTER = "hpc"
REST_CLUSTER = "hpc-rest"  # the same Slurm, jobs submitted through slurmrestd


def psij_python() -> Path:
    """The PSI/J venv's python, made (python -m venv, pip install) when missing."""
    python = PSIJ_VENV / "bin" / "python"
    check = [str(python), "-c", "import psij; print(psij.__version__)"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == PSIJ_VERSION:
            return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PSIJ_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"psij-python=={PSIJ_VERSION}"], check=True
    )
    return python


def gateway_round(sv: Services, jobs: int, cluster: str = CLUSTER) -> float:
    began = time.perf_counter()
    submitted = [
        sv.gw.submit(JobSpec(name=f"bench-{i}", command="true"), cluster) for i in range(jobs)
    ]
    sv.wait_submitted([job.id for job in submitted])
    return time.perf_counter() - began


def batch_round(sv: Services, jobs: int) -> float:
    """The same jobs through one ``gw.submit_many()`` call (a message per 25 jobs)."""
    began = time.perf_counter()
    specs = [JobSpec(name=f"bench-{i}", command="true") for i in range(jobs)]
    submitted = sv.gw.submit_many(specs, CLUSTER)
    sv.wait_submitted([job.id for job in submitted])
    return time.perf_counter() - began


def plain_round(bench: Bench, jobs: int) -> float:
    began = time.perf_counter()
    for i in range(jobs):
        bench.slurm(
            "sbatch", "--parsable", "-J", f"plain-{i}", "-o", "/dev/null", str(bench.script)
        )
    return time.perf_counter() - began


def psij_round(bench: Bench, python: Path, jobs: int) -> float:
    argv = [
        str(python),
        str(ROOT / "bench" / "psij_submit.py"),
        "--jobs",
        str(jobs),
        "--work-dir",
        str(bench.tmp / "psij"),
    ]
    answer = json.loads(bench.slurm(*argv, timeout_s=600).splitlines()[-1])
    return float(answer["seconds"])


def run(bench: Bench, jobs: int, rounds: int, concurrency: int) -> tuple[list[Figure], Any]:
    python = psij_python()
    profiles = [bench.profile(CLUSTER, "slurm", poll_interval_min_s=1, poll_interval_max_s=1)]
    if bench.rest:
        profiles.append(bench.profile(
            REST_CLUSTER, "slurm", poll_interval_min_s=1, poll_interval_max_s=1,
            slurm={"submit_via": "slurmrestd", "rest_socket": str(bench.rest_socket)},
        ))  # fmt: skip
    variants = ["gateway", "gateway_batch", *(["gateway_rest"] if bench.rest else []), "plain",
                "psij"]  # fmt: skip
    rates: dict[str, list[float]] = {k: [] for k in variants}
    cpu_ms: dict[str, list[float]] = {k: [] for k in variants}
    own_ms: dict[str, list[float]] = {k: [] for k in variants}
    with bench.gateway("submit", profiles, concurrency) as sv:
        gateway_round(sv, 10)  # warm the worker's pool processes up
        bench.cancel_everything()
        sv.wait_settled(CLUSTER)
        runs = {
            "gateway": lambda: gateway_round(sv, jobs),
            "gateway_batch": lambda: batch_round(sv, jobs),
            "gateway_rest": lambda: gateway_round(sv, jobs, REST_CLUSTER),
            "plain": lambda: plain_round(bench, jobs),
            "psij": lambda: psij_round(bench, python, jobs),
        }
        runs = {k: runs[k] for k in variants}
        for i in range(rounds):
            order = list(runs) if i % 2 == 0 else list(reversed(runs))
            for who in order:
                cpu_before, own_before = busy_cpu_s(), sv.stack_cpu_s(bench)
                seconds = runs[who]()
                cpu_ms[who].append((busy_cpu_s() - cpu_before) / jobs * 1000)
                own_ms[who].append((sv.stack_cpu_s(bench) - own_before) / jobs * 1000)
                rates[who].append(jobs / seconds)
                bench.cancel_everything()
                sv.wait_settled(CLUSTER)
                if bench.rest:
                    sv.wait_settled(REST_CLUSTER)
    gateway, plain, psij = (median(rates[k]) for k in ("gateway", "plain", "psij"))
    label = f"submit {jobs} jobs, concurrency {concurrency}"
    titles = {
        "gateway": "gateway",
        "gateway_batch": "gateway submit_many()",
        "gateway_rest": "gateway through slurmrestd",
    }

    def vs_plain(who: str) -> Figure:
        title = f"{label}: {titles[who]} vs plain sbatch loop"
        return at_least_times(
            "submit", title, median(rates[who]), "jobs/s", plain, "plain sbatch loop", 0.9
        )

    figures = [
        vs_plain("gateway"),
        at_least_times(
            "submit",
            f"{label}: gateway vs PSI/J {PSIJ_VERSION}",
            gateway,
            "jobs/s",
            psij,
            f"PSI/J {PSIJ_VERSION}",
            1.3,
        ),
        shown(
            "submit",
            "machine CPU per submitted job: gateway",
            median(cpu_ms["gateway"]),
            "ms",
            median(cpu_ms["plain"]),
            "plain sbatch loop",
        ),
        *(vs_plain(who) for who in ("gateway_batch", "gateway_rest") if who in rates),
        shown("submit", "machine CPU per submitted job: PSI/J", median(cpu_ms["psij"]), "ms"),
        shown(
            "submit",
            "CPU of the stack's processes per job: gateway",
            median(own_ms["gateway"]),
            "ms",
            median(own_ms["plain"]),
            "plain sbatch loop",
        ),
        shown(
            "submit", "CPU of the stack's processes per job: PSI/J", median(own_ms["psij"]), "ms"
        ),
        *(
            shown(
                "submit",
                f"CPU of the stack's processes per job: {who.replace('_', ' ')}",
                median(own_ms[who]),
                "ms",
            )
            for who in variants
            if who in ("gateway_batch", "gateway_rest")
        ),
    ]
    raw = {
        "jobs": jobs,
        "concurrency": concurrency,
        "rates_per_s": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "machine_cpu_ms_per_job": {k: [round(v, 2) for v in vs] for k, vs in cpu_ms.items()},
        "stack_cpu_ms_per_job": {k: [round(v, 2) for v in vs] for k, vs in own_ms.items()},
    }
    return figures, raw
