"""The local backend for the tests: its profile, its process groups, and its contract
harness. Jobs run as process groups on this host, under the profile's work_dir."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import psutil

from jobgate.client import Job, JobStatus
from tests.support.harness import BackendHarness, OnScheduler, Vanished
from tests.support.profiles import write_profile
from tests.support.waiting import wait_for


def write_local_profile(
    directory: Path, work_dir: Path, name: str = "local", poll_s: float = 0.2, **overrides: Any
) -> Path:
    """A local-backend profile with fast, fixed polling (`poll_s`), written to `directory`."""
    data: dict[str, Any] = {
        "name": name,
        "backend": "local",
        "local": {"work_dir": str(work_dir), "cancel_grace_s": 2},
        "poll_interval_min_s": poll_s,
        "poll_interval_max_s": poll_s,
        "reconcile_interval_s": 1,
        "lease_ttl_s": 3,
    }
    return write_profile(directory, data, **overrides)


def kill_jobs(work_dir: Path) -> None:
    """Kill the process group of every local job under `work_dir` that left a runner record."""
    for proc_file in work_dir.glob("*/*.proc"):
        with contextlib.suppress(ProcessLookupError, ValueError, KeyError):
            os.killpg(int(json.loads(proc_file.read_text())["pgid"]), signal.SIGKILL)


def process_group(work_dir: Path, job: Job) -> int:
    """The process group a local job runs in, from the runner's file."""
    return int(json.loads((work_dir / job.id / f"{job.id}.proc").read_text())["pgid"])


def live_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group `pgid`, looked up here
    rather than through the backend, so that the check does not trust what it checks."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


class LocalGroup(OnScheduler):
    """A local job's process group, read while the job runs."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid

    def running(self) -> bool:
        return len(live_members(self.pgid)) >= 3  # runner, task, shell and what it started

    def assert_stopped(self) -> None:
        assert live_members(self.pgid) == []  # gone before the cancel answered


class LocalHarness(BackendHarness):
    """Process groups on the worker's host: nothing to emulate, the store counts queries."""

    name = "local"
    cluster = "local"
    interval_s = 0.2
    lost_reason = "lost: its processes ended without an exit record (killed outside jobgate?)"
    status_before_lost = JobStatus.RUNNING
    array_first_index = 0

    def __init__(self, work_dir: Path, **common: Any) -> None:
        super().__init__(**common)
        self.work_dir = work_dir

    def profile(self, **settings: Any) -> Path:
        return write_local_profile(
            self.tmp_path, self.work_dir, self.cluster, self.interval_s, **settings
        )

    def on_scheduler(self, job: Job) -> OnScheduler:
        return LocalGroup(process_group(self.work_dir, job))

    def vanished(self) -> Vanished:
        """A running job whose process group is killed outside jobgate."""
        self.start()
        job = self.submit_named("victim", "sleep 300")
        wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
        os.killpg(process_group(self.work_dir, job), signal.SIGKILL)
        return Vanished(lost=job)

    def status_calls(self) -> int:
        return self.gateway.scheduler_queries(self.cluster)
