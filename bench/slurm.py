"""Issue 13's benchmark: the gateway on a real Slurm against the tools users would pick
instead, each goal's figure beside its reference measured in the same run.

    python bench/slurm.py [--only submit,scale,memory,cancel,lag] [--jobs 200]
                          [--scale 10000] [--rounds 3] [--concurrency 4]

Starts the private Slurm of scripts/slurm-local once, and for each section a fresh
redis-server and one worker (Celery prefork, --concurrency processes) serving that
section's profiles; all are stopped by PID at the end. Sections (see each module):
- submit (bench/slurm_submit.py): submit rate vs a plain sbatch loop and PSI/J, CPU per job;
- scale (bench/slurm_scale.py): filling to --scale active jobs: submit rate, poll step,
  squeue calls per step, worker RSS;
- memory (bench/slurm_memory.py): Redis bytes per active and per finished job;
- cancel (bench/slurm_cancel.py): cancelling many Slurm and local jobs vs one scancel;
- lag (bench/slurm_lag.py): end to end for trivial jobs vs Slurm's raw drain.
Figures are medians of --rounds rounds, gateway and reference alternating. Prints the
machine, the date and the commit, a table of figures, and writes
bench/results/slurm.json (after each section, so that a failed run keeps what it had).
--scale 1000 --rounds 3 takes about 18 minutes here: 10 of them are the lag section's
drains (Slurm runs 200 trivial jobs in ~95 s on 2 CPUs, six times) and 5 the local
cancel rounds; add --lag-jobs 50 --local-jobs 200 for a run of a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import slurm_cancel
import slurm_lag
import slurm_memory
import slurm_scale
import slurm_submit
from slurm_goals import Figure, table
from slurm_stack import ROOT, Bench, exit_on_signals

SECTIONS = ("submit", "scale", "memory", "cancel", "lag")
RESULTS = ROOT / "bench" / "results" / "slurm.json"


def output(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    if done.returncode != 0:
        return "?"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def machine(env: dict[str, str]) -> dict[str, Any]:
    """What the figures were measured on."""
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    dirty = output(["git", "status", "--porcelain", "--untracked-files=no"]) not in ("", "?")
    return {
        "host": platform.node(),
        "cpu": f"{model}, {os.cpu_count()} CPUs",
        "load_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "slurm": output(["sbatch", "--version"], env),
        "redis": output([shutil.which("redis-server") or "redis-server", "--version"]),
        "commit": output(["git", "rev-parse", "--short", "HEAD"]) + (" (dirty)" if dirty else ""),
        "branch": output(["git", "rev-parse", "--abbrev-ref", "HEAD"]),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="issue 13's benchmark on the private Slurm")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--jobs", type=int, default=200, help="jobs per submit, cancel and lag round (default 200)"
    )
    parser.add_argument(
        "--scale", type=int, default=10_000, help="active Slurm jobs to fill to (default 10000)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (default 3)")
    parser.add_argument("--concurrency", type=int, default=4, help="worker processes (4)")
    parser.add_argument(
        "--memory-jobs",
        type=int,
        default=1000,
        help="jobs measured for Redis memory, active and finished (1000)",
    )
    parser.add_argument(
        "--local-jobs", type=int, default=1000, help="local-backend jobs cancelled per round (1000)"
    )
    parser.add_argument("--lag-jobs", type=int, help="jobs per lag round (default: --jobs)")
    parser.add_argument(
        "--steps",
        type=int,
        default=3,
        help="poll steps observed at 1,000 and at --scale active (3)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench's temporary files")
    args = parser.parse_args()
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    if args.rounds < 3:
        print("note: fewer than 3 rounds; the issue asks for medians of >= 3", file=sys.stderr)
    return args


def run_section(bench: Bench, name: str, args: argparse.Namespace) -> tuple[list[Figure], Any]:
    c = args.concurrency
    if name == "submit":
        return slurm_submit.run(bench, args.jobs, args.rounds, c)
    if name == "scale":
        return slurm_scale.run(bench, args.scale, args.jobs, args.steps, c)
    if name == "memory":
        return slurm_memory.run(bench, args.memory_jobs, c)
    if name == "cancel":
        return slurm_cancel.run(bench, args.jobs, args.local_jobs, args.rounds, c)
    return slurm_lag.run(bench, args.lag_jobs or args.jobs, args.rounds, c)


def run_all(bench: Bench, args: argparse.Namespace) -> tuple[list[Figure], list[str]]:
    """Every chosen section; results written after each. A failed section is reported
    and skipped, the others still run."""
    results: dict[str, Any] = {
        "when": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": machine(bench.env),
        "command": "python bench/slurm.py " + " ".join(sys.argv[1:]),
        "rounds": args.rounds,
        "sections": {},
        "figures": [],
    }
    m = results["machine"]
    print(f"jobgate bench/slurm.py  {results['when']}  commit {m['commit']} ({m['branch']})")
    print(
        f"machine: {m['host']}, {m['cpu']}, load {m['load_1m']}; Python {m['python']}; "
        f"{m['slurm']}; {m['redis']}"
    )
    figures: list[Figure] = []
    failed = []
    for name in args.only:
        started = time.monotonic()
        print(f"\n== {name} ...", flush=True)
        try:
            found, raw = run_section(bench, name, args)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            bench.cancel_everything()
            continue
        figures += found
        results["sections"][name] = {**raw, "seconds": round(time.monotonic() - started)}
        results["figures"] = [f.as_json() for f in figures]
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(table(found), flush=True)
    return figures, failed


def main() -> int:
    args = parse_args()
    exit_on_signals()
    bench = Bench(keep=args.keep).start()
    try:
        figures, failed = run_all(bench, args)
    finally:
        bench.stop()
    goals = [f for f in figures if f.holds is not None]
    print(f"\n== all figures (medians of {args.rounds} rounds)\n{table(figures)}")
    print(
        f"\n{sum(bool(f.holds) for f in goals)} of {len(goals)} goals hold"
        + (f"; sections that failed: {', '.join(failed)}" if failed else "")
    )
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
