"""Gateway core figures on the local backend, with real Redis and a real worker.

    python bench/core.py [--runs 20] [--scales 50,1000]

Prints a table and writes bench/results/core.json:
- submit() call latency;
- submit() -> RUNNING seen by the client, on an idle cluster (the submit starts
  the polling chain, whose first step runs at once) and on a busy one (a chain
  is already running: RUNNING shows at its next step);
- process exit (the exit time the job's wrapper records) -> wait() returning
  (probe jobs wait for a gate file that is opened once RUNNING has been seen);
- scheduler status queries per poll interval with N active jobs, and the time
  one batched query of N local jobs takes.
Medians (and p90) over `--runs` runs; the machine's other load adds noise.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import devstack  # noqa: E402

from jobgate.client import Gateway, Job, JobSpec, JobStatus  # noqa: E402
from jobgate.client.profile_schema import LocalProfile  # noqa: E402
from jobgate.client.profiles import load_profile  # noqa: E402
from jobgate.workers.backends.local import LocalBackend  # noqa: E402

POLL_INTERVAL_S = 1.0  # the built-in local profile's shortest interval


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[max(0, int(len(ordered) * 0.9) - 1)],
        "min": ordered[0],
        "max": ordered[-1],
        "runs": len(ordered),
    }


def wait_for_status(gw: Gateway, job: Job, status: JobStatus, timeout_s: float = 60) -> float:
    """Block on the job's event stream until `status`; the time.time() it was seen."""
    deadline = time.monotonic() + timeout_s
    after = "0"
    while time.monotonic() < deadline:
        for event_id, event in gw.store.read_events(job.id, after, block_ms=1000):
            after = event_id
            if event["status"] == status.value:
                return time.time()
            if JobStatus(event["status"]).is_finished:
                raise RuntimeError(f"job {job.id} finished as {event['status']}")
    raise RuntimeError(f"job {job.id} not {status.value} within {timeout_s} s")


def latency_runs(gw: Gateway, runs: int, busy: bool, gates: Path) -> dict[str, list[float]]:
    """Each probe job waits for its gate file, opened once RUNNING has been seen, so a
    probe can neither finish unseen nor depend on how fast the machine is."""
    figures: dict[str, list[float]] = {
        "submit_s": [],
        "submit_to_running_s": [],
        "exit_to_wait_s": [],
    }
    keeper = None
    if busy:
        keeper = gw.submit(JobSpec(name="keeper", command="sleep 3600"), cluster="local")
        wait_for_status(gw, keeper, JobStatus.RUNNING)
    rng = random.Random(2)
    for _ in range(runs):
        if busy:  # submit at a random phase of the running chain, as users do
            time.sleep(rng.uniform(0, POLL_INTERVAL_S))
        gate = gates / f"gate-{busy}-{len(figures['submit_s'])}"
        command = f'while [ ! -e "{gate}" ]; do sleep 0.01; done'
        t0 = time.time()
        job = gw.submit(JobSpec(name="probe", command=command), cluster="local")
        figures["submit_s"].append(time.time() - t0)
        figures["submit_to_running_s"].append(wait_for_status(gw, job, JobStatus.RUNNING) - t0)
        time.sleep(rng.uniform(0, POLL_INTERVAL_S))  # let the job end at a random phase
        gate.touch()
        record = job.wait(timeout_s=60)
        returned = time.time()
        assert record.status is JobStatus.SUCCEEDED
        assert record.finished_at is not None
        figures["exit_to_wait_s"].append(returned - record.finished_at.timestamp())
    if keeper is not None:
        keeper.cancel()
    return figures


def scale_run(
    gw: Gateway, profile_path: Path, n: int, window_s: float, runs: int
) -> dict[str, Any]:
    jobs = [
        gw.submit(JobSpec(name=f"s{i}", command="sleep 3600"), cluster="local") for i in range(n)
    ]
    deadline = time.monotonic() + 600
    while len(gw.list(statuses={JobStatus.RUNNING}, cluster="local", limit=n + 10)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{n} jobs did not all start")
        time.sleep(0.5)
    before, t0 = gw.store.query_stats("local"), time.time()
    time.sleep(window_s)
    after, elapsed = gw.store.query_stats("local"), time.time() - t0
    queries = after["queries"] - before["queries"]
    local = load_profile(str(profile_path))
    assert isinstance(local, LocalProfile)
    backend = LocalBackend(local)
    ids = [j.id for j in jobs]
    query_times = []
    for _ in range(runs):
        q0 = time.perf_counter()
        observed = backend.query(ids)
        query_times.append(time.perf_counter() - q0)
        assert all(o.status is JobStatus.RUNNING for o in observed.values())
    c0 = time.time()
    with ThreadPoolExecutor(max_workers=16) as pool:
        cancelled = list(pool.map(lambda job: job.cancel(timeout_s=300).status, jobs))
    cancel_s = time.time() - c0
    assert set(cancelled) == {JobStatus.CANCELLED}
    return {
        "active_jobs": n,
        "window_s": round(elapsed, 2),
        "queries_in_window": queries,
        "queries_per_poll_interval": queries / (elapsed / POLL_INTERVAL_S),
        "jobs_per_query": (after["jobs_queried"] - before["jobs_queried"]) / max(queries, 1),
        "batched_query_s": summary(query_times),
        "cancel_all_s": round(cancel_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="jobgate core benchmark (local backend)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--scales", default="50,1000")
    parser.add_argument("--window", type=float, default=10.0, help="seconds to count queries")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="jobgate-bench-"))
    # The built-in local profile at a fixed 1 s cadence, so figures are per interval.
    profile = load_profile("local").model_copy(
        update={"poll_interval_min_s": POLL_INTERVAL_S, "poll_interval_max_s": POLL_INTERVAL_S}
    )
    assert isinstance(profile, LocalProfile)
    profile.local.work_dir = str(tmp / "jobs")
    profile_path = tmp / "local.yaml"
    profile_path.write_text(yaml.safe_dump(profile.model_dump()))
    redis = devstack.RedisServer(tmp / "logs").start()
    worker = devstack.Worker(tmp / "logs", redis.url, [str(profile_path)], concurrency=4).start()
    results: dict[str, Any] = {
        "when": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {platform.python_version()}",
        "command": "python bench/core.py " + " ".join(sys.argv[1:]),
        "poll_interval_s": POLL_INTERVAL_S,
    }
    try:
        with Gateway(redis.url) as gw:
            for label, busy in (("idle_cluster", False), ("busy_cluster", True)):
                raw = latency_runs(gw, args.runs, busy, tmp)
                results[label] = {name: summary(values) for name, values in raw.items()}
            results["scale"] = [
                scale_run(gw, profile_path, int(n), args.window, args.runs)
                for n in args.scales.split(",")
            ]
    finally:
        worker.stop()
        redis.stop()

    out = ROOT / "bench" / "results" / "core.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0


def print_table(results: dict[str, Any]) -> None:
    print(f"{results['machine']}, poll interval {results['poll_interval_s']} s")
    print(f"{'figure':<44}{'median':>10}{'p90':>10}")
    for label in ("idle_cluster", "busy_cluster"):
        for name, s in results[label].items():
            print(f"{label + ' ' + name:<44}{s['median'] * 1000:>8.1f}ms{s['p90'] * 1000:>8.1f}ms")
    for row in results["scale"]:
        query_ms = row["batched_query_s"]["median"] * 1000
        print(
            f"{row['active_jobs']} active jobs: {row['queries_per_poll_interval']:.2f} queries per "
            f"poll interval ({row['jobs_per_query']:.0f} jobs each), batched query "
            f"{query_ms:.1f} ms median, cancel all {row['cancel_all_s']} s"
        )


if __name__ == "__main__":
    sys.exit(main())
