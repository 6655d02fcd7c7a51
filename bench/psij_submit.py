"""Submit N trivial jobs with PSI/J's Slurm executor, one after another; print the rate.

    <psij venv>/bin/python bench/psij_submit.py --jobs 200 --work-dir DIR

Runs in the venv bench/slurm.py makes for PSI/J (never jobgate's): it imports psij
only. Timed from the first ``submit()`` to the return of the last (each one runs
sbatch and returns once Slurm has answered with the job's id), as the gateway's
figure is timed until every job has its Slurm id. Prints one JSON line:
``{"jobs": N, "seconds": S, "per_s": R, "cpu_s": C}`` (C: this process's CPU time).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import psij  # type: ignore[import-not-found]
from psij.executors.batch.slurm import SlurmExecutorConfig  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    args = parser.parse_args()
    config = SlurmExecutorConfig(work_directory=args.work_dir)  # PSI/J's own defaults else
    executor = psij.JobExecutor.get_instance("slurm", config=config)
    jobs = [
        psij.Job(
            psij.JobSpec(executable="/bin/true", name=f"psij-{i}", stdout_path=Path("/dev/null"))
        )
        for i in range(args.jobs)
    ]
    began = time.perf_counter()
    for job in jobs:
        executor.submit(job)
    seconds = time.perf_counter() - began
    for job in jobs:
        if not job.native_id:
            raise SystemExit(f"PSI/J job {job.id} has no Slurm id after submit()")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "jobs": args.jobs,
        "seconds": seconds,
        "per_s": args.jobs / seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
