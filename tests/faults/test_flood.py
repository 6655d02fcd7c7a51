"""A flood of submits: 10,000 jobs queued for one cluster at once, on a worker that also
serves another cluster. The other cluster's polling goes on through the backlog (poll
queues are apart from submit queues), the worker's memory stays bounded (it prefetches
one message per process, whatever the backlog), and every job reaches the scheduler.

The flood's jobs are held in Slurm (``sbatch --hold``) and cancelled at the end, so the
test measures the gateway, not 10,000 jobs running on two CPUs.
"""

from __future__ import annotations

import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from jobgate.client import ClusterNotServedWarning, Gateway, Job, JobSpec, JobStatus
from scripts import devstack
from tests.support.local import write_local_profile
from tests.support.slurm import LocalSlurm, slurm_profile
from tests.support.waiting import gated, wait_for
from tests.support.workers import WorkerFactory

FLOOD = 10_000
THREADS = 8


def worker_rss_mb(worker: devstack.Worker) -> tuple[float, float]:
    """Resident memory of the worker's main process, and of it with its pool processes
    (not the scheduler commands they run, which come and go)."""
    main = psutil.Process(worker.pid)
    pool = 0
    for child in main.children():
        try:
            pool += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue  # a pool process replaced meanwhile
    own = main.memory_info().rss
    return own / 2**20, (own + pool) / 2**20


@pytest.fixture
def held(slurm: LocalSlurm) -> Iterator[list[str]]:
    """Slurm ids of the flood's held jobs, cancelled at the end whatever happens."""
    ids: list[str] = []
    yield ids
    for start in range(0, len(ids), 1000):
        subprocess.run(["scancel", *ids[start : start + 1000]], env=slurm.env(), check=False,
                       capture_output=True, timeout=120)  # fmt: skip


def submit_flood(gateway: Gateway) -> list[Job]:
    """FLOOD held jobs for cluster hpc, from THREADS threads at once."""
    jobs: list[Job] = []
    lock = threading.Lock()

    def submit(count: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(count):
                job = gateway.submit(JobSpec(name="flood", command="true"), cluster="hpc")
                with lock:
                    jobs.append(job)

    threads = [threading.Thread(target=submit, args=(FLOOD // THREADS,)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return jobs


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ten_thousand_queued_submits_hold_up_no_other_cluster_and_none_is_dropped(
    slurm: LocalSlurm,
    gateway: Gateway,
    start_worker: WorkerFactory,
    tmp_path: Path,
    work_dir: Path,
    held: list[str],
) -> None:
    flood = slurm_profile(tmp_path, slurm={"extra_args": ["--hold"]}, job_name_prefix="flood",
                          reconcile_interval_s=600)  # fmt: skip
    quiet = write_local_profile(tmp_path, work_dir, "quiet", 0.5)
    worker = start_worker(flood, quiet, env=slurm.env(), concurrency=4)
    gate = tmp_path / "go"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClusterNotServedWarning)
        waiting = gateway.submit(JobSpec(name="q", command=gated("echo quiet", gate)), "quiet")
    wait_for(lambda: waiting.status() is JobStatus.RUNNING, what="the quiet cluster's job")
    main_before, rss_before = worker_rss_mb(worker)

    began = time.monotonic()
    jobs = submit_flood(gateway)
    submitted_s = time.monotonic() - began
    assert len(jobs) == FLOOD

    store, new_index = gateway.store, gateway.keys.index_status(JobStatus.NEW)
    samples: list[tuple[int, float]] = []  # (jobs still NEW, the quiet cluster's queries)
    main_peak, peak_mb = main_before, rss_before

    def drained() -> bool:
        nonlocal main_peak, peak_mb
        left = int(store.redis.zcard(new_index))
        samples.append((left, store.query_stats("quiet").get("queries", 0.0)))
        main_mb, total_mb = worker_rss_mb(worker)
        main_peak, peak_mb = max(main_peak, main_mb), max(peak_mb, total_mb)
        return left == 0

    wait_for(drained, timeout_s=600, what="every flooded submit to reach Slurm")
    drained_s = time.monotonic() - began

    records = [r for r in store.get_many([j.id for j in jobs]) if r is not None]
    held.extend(r.backend_id for r in records if r.backend_id)
    assert len(records) == FLOOD
    assert {r.status for r in records} == {JobStatus.PENDING}  # held: on Slurm, not run
    assert len(set(held)) == FLOOD  # one Slurm job each, none twice
    on_slurm = slurm.run("squeue", "-h", "-t", "PD", "-o", "%j").split()
    assert sum(1 for name in on_slurm if name.startswith("flood-")) == FLOOD

    # The quiet cluster was polled while most of the backlog was still waiting.
    backlog = [queries for left, queries in samples if left >= FLOOD // 2]
    assert len(backlog) >= 2, samples[:: max(1, len(samples) // 20)]
    assert backlog[-1] > backlog[0], samples[:: max(1, len(samples) // 20)]
    gate.touch()
    assert waiting.wait(timeout_s=60).status is JobStatus.SUCCEEDED
    # The backlog stays in Redis: the main process, which fetches messages, does not grow
    # with it; the pool processes grow a little with the 10,000 jobs they poll.
    assert main_peak - main_before < 50, f"the main process grew {main_peak - main_before} MB"
    assert peak_mb - rss_before < 150, f"the worker grew {peak_mb - rss_before:.0f} MB"
    polled = backlog[-1] - backlog[0]
    print(f"FIGURE flood {FLOOD}: submitted in {submitted_s:.0f} s, all on Slurm after "
          f"{drained_s:.0f} s, worker RSS {rss_before:.0f} -> peak {peak_mb:.0f} MB (main "
          f"{main_before:.0f} -> {main_peak:.0f} MB), "
          f"quiet cluster polled {polled:.0f} times during the first half")  # fmt: skip
