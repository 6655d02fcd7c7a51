"""Goal 3: Redis memory per job, active (Slurm, held PENDING) and finished (kept for
retention; local backend, trivial jobs).

The figure is Redis's ``INFO memory`` used_memory after the jobs minus before, divided
by the number of jobs: everything a job costs, its share of the index sorted sets and
of Celery's result backend included. Beside it, the keys that carry a job's id or its
result id, found by scanning the keyspace and sized with ``MEMORY USAGE``, per job and
per kind of key. A warm-up batch runs first, so the shared structures already exist.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis
from slurm_goals import Figure, at_most, shown
from slurm_stack import ROOT, Bench, Services, devstack

from jobgate.client import JobSpec, JobStatus

ACTIVE, FINISHED = "held", "local"
WARM_UP = 20
KB = 1024
DEPLOY_REDIS_CONF = ROOT / "deploy" / "redis.conf"
JOB_ID = re.compile(r"[0-9a-hjkmnp-tv-z]{26}")
RESULT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def submit(sv: Services, cluster: str, command: str, count: int) -> list[str]:
    return [
        sv.gw.submit(JobSpec(name=f"{cluster}-{i}", command=command), cluster).id
        for i in range(count)
    ]


def wait_finished(sv: Services, job_ids: list[str]) -> None:
    """Until every job is finished and no final result waits to be stored."""
    sv.wait_finished(job_ids)
    client = sv.redis.client()
    devstack.wait_until(
        lambda: not client.zcard(sv.gw.keys.finalize_pending),
        600,
        "final results to be stored",
        interval_s=0.2,
    )


def per_key(sv: Services, job_ids: list[str]) -> dict[str, float]:
    """Bytes per job of each kind of key that names one of these jobs or their results."""
    client = sv.redis.client()
    records = [r for r in sv.gw.store.get_many(job_ids) if r is not None]
    ours = {r.id for r in records} | {r.result_id for r in records}
    keys = []
    for key in client.scan_iter(count=1000):
        found = JOB_ID.findall(key) + RESULT_ID.findall(key)
        if any(token in ours for token in found):
            keys.append(key)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    totals: dict[str, float] = defaultdict(float)
    for key, size in zip(keys, pipe.execute(), strict=True):
        kind = RESULT_ID.sub("{result}", JOB_ID.sub("{id}", key))
        totals[kind] += (size or 0) / len(job_ids)
    return dict(sorted(totals.items()))


def measure(bench: Bench, jobs: int, concurrency: int, config: Path | None) -> dict[str, Any]:
    """Bytes per active and per finished job on a redis-server loading `config`."""
    held = bench.profile(ACTIVE, "slurm", slurm={"extra_args": ["--hold"]})
    local = bench.profile(FINISHED, "local", poll_interval_min_s=1, poll_interval_max_s=1)
    section = "memory" if config is None else f"memory-{config.stem}"
    try:
        with bench.gateway(section, [held, local], concurrency, redis_config=config) as sv:
            client = sv.redis.client()
            submit(sv, ACTIVE, "sleep 3600", WARM_UP)
            sv.wait_active(ACTIVE, WARM_UP)
            wait_finished(sv, submit(sv, FINISHED, "true", WARM_UP))

            before = used_memory(client)
            active_ids = submit(sv, ACTIVE, "sleep 3600", jobs)
            sv.wait_active(ACTIVE, WARM_UP + jobs)
            sv.wait_polls(ACTIVE, 1)
            active_bytes = (used_memory(client) - before) / jobs
            active_keys = per_key(sv, active_ids)

            before = used_memory(client)
            finished_ids = submit(sv, FINISHED, "true", jobs)
            wait_finished(sv, finished_ids)
            finished_bytes = (used_memory(client) - before) / jobs
            finished_keys = per_key(sv, finished_ids)
            statuses = {r.status for r in sv.gw.store.get_many(finished_ids) if r is not None}
    finally:
        bench.cancel_everything()
    if statuses != {JobStatus.SUCCEEDED}:
        raise RuntimeError(f"finished local jobs ended as {sorted(statuses)}, not SUCCEEDED")
    return {
        "active_bytes": active_bytes,
        "finished_bytes": finished_bytes,
        "active_keys": active_keys,
        "finished_keys": finished_keys,
    }


def memory_settings(bench: Bench) -> Path:
    """deploy/redis.conf without its ACL users (`aclfile`, `user`): the bench logs in
    as Redis's default user; what the settings do to memory is the same."""
    kept = [
        line
        for line in DEPLOY_REDIS_CONF.read_text().splitlines()
        if not line.startswith(("aclfile ", "user "))
    ]
    config = bench.tmp / "redis.conf"
    config.write_text("\n".join(kept) + "\n")
    return config


def run(bench: Bench, jobs: int, concurrency: int) -> tuple[list[Figure], Any]:
    """The goal on Redis as deploy/redis.conf sets it up (stream-node-max-bytes 1024);
    a stock redis-server beside it (a stream node takes 4 KB there)."""
    deployed = measure(bench, jobs, concurrency, memory_settings(bench))
    stock = measure(bench, jobs, concurrency, None)
    active_bytes, finished_bytes = deployed["active_bytes"], deployed["finished_bytes"]
    active_keys, finished_keys = deployed["active_keys"], deployed["finished_keys"]
    figures = [
        at_most(
            "memory",
            f"Redis per active job ({jobs} held Slurm jobs, deploy/redis.conf)",
            active_bytes / KB,
            "KB",
            4,
            sum(active_keys.values()) / KB,
            "its own keys",
        ),
        at_most(
            "memory",
            f"Redis per finished job ({jobs} local jobs, retained, deploy/redis.conf)",
            finished_bytes / KB,
            "KB",
            2.5,
            sum(finished_keys.values()) / KB,
            "its own keys",
        ),
    ]
    results = sum(v for k, v in finished_keys.items() if "celery-task-meta" in k)
    figures.append(
        shown(
            "memory",
            "  per finished job once its Celery result expired (result_expires_s)",
            (finished_bytes - results) / KB,
            "KB",
        )
    )
    figures += [
        shown("memory", "  active, stock redis-server", stock["active_bytes"] / KB, "KB"),
        shown("memory", "  finished, stock redis-server", stock["finished_bytes"] / KB, "KB"),
    ]
    figures += [shown("memory", f"  active: {k}", v / KB, "KB") for k, v in active_keys.items()]
    figures += [shown("memory", f"  finished: {k}", v / KB, "KB") for k, v in finished_keys.items()]
    raw = {
        "jobs": jobs,
        "active_bytes_per_job": round(active_bytes),
        "finished_bytes_per_job": round(finished_bytes),
        "active_keys_bytes_per_job": {k: round(v) for k, v in active_keys.items()},
        "finished_keys_bytes_per_job": {k: round(v) for k, v in finished_keys.items()},
        "stock_redis": {
            "active_bytes_per_job": round(stock["active_bytes"]),
            "finished_bytes_per_job": round(stock["finished_bytes"]),
        },
    }
    return figures, raw
