"""Flower, started for the tenant, sees the workers' tasks; task arguments are ids only and
answers carrying job data are not shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobgate.client import Gateway, JobSpec, routing
from scripts import devstack
from tests.support.waiting import TIMEOUT_S, wait_for
from tests.support.workers import ProfileFactory, WorkerFactory, wait_for_task_events


def _tasks(flower: devstack.Flower) -> dict[str, dict[str, Any]]:
    tasks: dict[str, dict[str, Any]] = flower.get_json("/api/tasks")
    return tasks


def test_flower_shows_tasks_with_ids_only(
    gateway: Gateway,
    make_profile: ProfileFactory,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    flower = devstack.Flower(
        tmp_path / "flower", gateway.url, tenant=gateway.tenant, basic_auth="ops:pw"
    ).start()
    try:
        wait_for_task_events(start_worker(make_profile()))
        job = gateway.submit(
            JobSpec(name="shown", command="echo private-output", env={"TOKEN": "s3cr3t"}),
            cluster="local",
        )
        job.wait(timeout_s=TIMEOUT_S)
        assert "".join(job.logs()) == "private-output\n"

        def seen() -> dict[str, dict[str, Any]] | None:
            by_name = {t["name"]: t for t in _tasks(flower).values()}
            wanted = {routing.DRAIN_SUBMITS, routing.POLL, routing.LOGS}
            done = wanted <= by_name.keys() and by_name[routing.LOGS]["state"] == "SUCCESS"
            return by_name if done else None

        tasks = wait_for(seen, what="Flower to show drain, poll and logs tasks")
        assert tasks[routing.DRAIN_SUBMITS]["args"] == repr(["local", 1])  # the drainer's slot
        assert tasks[routing.DRAIN_SUBMITS]["state"] == "SUCCESS"
        shown = json.dumps(list(_tasks(flower).values()))
        assert "private-output" not in shown
        assert "s3cr3t" not in shown
    finally:
        flower.stop()
