"""sbatch submissions per second: through the gateway vs a plain sbatch loop, same Slurm.

    python bench/slurm.py [--jobs 100] [--rounds 5] [--concurrency 4]

Starts the private Slurm of scripts/slurm-local, a redis-server and one worker
(Celery prefork, --concurrency processes) serving a Slurm profile. Each round:
- plain: `sbatch --parsable` run N times in a row from this process;
- gateway: N `gw.submit()` calls, timed until every job has its Slurm id (the
  worker's sbatch has returned), i.e. the rate at which the gateway submits.
All jobs are trivial; the queue is drained between rounds. Prints medians and
writes bench/results/slurm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import devstack  # noqa: E402

from jobgate.client import Gateway, JobSpec  # noqa: E402


def slurm_local(directory: Path, *args: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "slurm-local"), "--dir", str(directory), *args],
                   check=True, capture_output=True, text=True, timeout=300)  # fmt: skip


def drain(env: dict[str, str]) -> None:
    """Until squeue shows no pending or running job."""
    while subprocess.run(["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip():  # fmt: skip
        time.sleep(0.2)


def plain_round(env: dict[str, str], script: Path, jobs: int) -> float:
    began = time.perf_counter()
    for i in range(jobs):
        subprocess.run(["sbatch", "--parsable", "-J", f"plain-{i}", "-o", "/dev/null", str(script)],
                       env=env, check=True, capture_output=True, text=True)  # fmt: skip
    return jobs / (time.perf_counter() - began)


def gateway_round(gw: Gateway, jobs: int) -> float:
    began = time.perf_counter()
    submitted = [gw.submit(JobSpec(name=f"bench-{i}", command="true"), "hpc") for i in range(jobs)]
    pending = {job.id for job in submitted}
    while pending:
        records = gw.store.get_many(sorted(pending))
        pending = {r.id for r in records if r is not None and not r.backend_id}
        time.sleep(0.01)
    return jobs / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description="sbatch rate: gateway vs plain loop")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="jobgate-bench-slurm-"))
    slurm_dir = tmp / "slurm"
    slurm_local(slurm_dir, "start")
    env = {**os.environ, "SLURM_CONF": str(slurm_dir / "slurm.conf")}
    script = tmp / "true.sh"
    script.write_text("#!/bin/sh\ntrue\n")
    profile = tmp / "hpc.yaml"
    profile.write_text(yaml.safe_dump({
        "name": "hpc", "backend": "slurm",
        "slurm": {"partition": "debug", "work_dir": str(tmp / "jobs"), "accounting": "jobcomp"},
        "poll_interval_min_s": 1, "poll_interval_max_s": 1,
        "policy": {"warn_missing_walltime": False},
    }))  # fmt: skip
    redis = devstack.RedisServer(tmp / "logs").start()
    worker = devstack.Worker(tmp / "logs", redis.url, [str(profile)], env={"SLURM_CONF": env[
        "SLURM_CONF"]}, concurrency=args.concurrency).start()  # fmt: skip
    rates: dict[str, list[float]] = {"plain_sbatch_per_s": [], "gateway_sbatch_per_s": []}
    try:
        with Gateway(redis.url) as gw:
            for _ in range(args.rounds):
                rates["plain_sbatch_per_s"].append(plain_round(env, script, args.jobs))
                drain(env)
                rates["gateway_sbatch_per_s"].append(gateway_round(gw, args.jobs))
                drain(env)
    finally:
        worker.stop()
        redis.stop()
        slurm_local(slurm_dir, "stop", "--cancel-jobs")

    plain = statistics.median(rates["plain_sbatch_per_s"])
    through = statistics.median(rates["gateway_sbatch_per_s"])
    results: dict[str, Any] = {
        "when": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {platform.python_version()}",
        "command": "python bench/slurm.py " + " ".join(sys.argv[1:]),
        "jobs_per_round": args.jobs,
        "worker_concurrency": args.concurrency,
        "rounds": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "median_plain_sbatch_per_s": round(plain, 1),
        "median_gateway_sbatch_per_s": round(through, 1),
        "gateway_over_plain": round(through / plain, 2),
    }
    out = ROOT / "bench" / "results" / "slurm.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"plain sbatch loop:   {plain:7.1f} submissions/s (median of {args.rounds})")
    print(f"through the gateway: {through:7.1f} submissions/s (median of {args.rounds}, "
          f"{args.concurrency} worker processes)")  # fmt: skip
    print(f"ratio gateway/plain: {through / plain:.2f}\nwritten to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
