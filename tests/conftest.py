"""Fixtures: a real redis-server on a free loopback port, real workers as subprocesses.

Each test gets its own tenant, so its keys, queues and Celery traffic are apart
from every other test's, on one Redis started for the session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import contextlib

import devstack

from jobgate.client import Gateway


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.RedisServer]:
    server = devstack.RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: devstack.RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def tenant() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def gateway(redis_url: str, tenant: str) -> Iterator[Gateway]:
    gw = Gateway(redis_url, tenant=tenant, owner="tester")
    yield gw
    gw.close()


@pytest.fixture
def work_dir(tmp_path: Path) -> Iterator[Path]:
    """Where local jobs of the test run; any job still running at the end is killed."""
    path = tmp_path / "jobs"
    path.mkdir()
    yield path
    for proc_file in path.glob("*/*.proc"):
        with contextlib.suppress(ProcessLookupError, ValueError, KeyError):
            os.killpg(int(json.loads(proc_file.read_text())["pgid"]), signal.SIGKILL)


ProfileFactory = Callable[..., Path]


@pytest.fixture
def make_profile(tmp_path: Path, work_dir: Path) -> ProfileFactory:
    """Write a local-backend profile (fast, fixed polling: `poll_s`) and return its path."""

    def make(name: str = "local", poll_s: float = 0.2, **overrides: Any) -> Path:
        data: dict[str, Any] = {
            "name": name,
            "backend": "local",
            "local": {"work_dir": str(work_dir), "cancel_grace_s": 2},
            "poll_interval_min_s": poll_s,
            "poll_interval_max_s": poll_s,
            "reconcile_interval_s": 1,
            "lease_ttl_s": 3,
        }
        data.update(overrides)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


WorkerFactory = Callable[..., devstack.Worker]


@pytest.fixture
def start_worker(tmp_path: Path, redis_url: str, tenant: str) -> Iterator[WorkerFactory]:
    """Start `jobgate worker` subprocesses; all are stopped at the end of the test."""
    workers: list[devstack.Worker] = []

    def start(
        *profiles: Path,
        name: str | None = None,
        concurrency: int = 2,
        env: dict[str, str] | None = None,
    ) -> devstack.Worker:
        worker = devstack.Worker(
            tmp_path / "logs",
            redis_url,
            [str(p) for p in profiles],
            tenant=tenant,
            name=name or f"worker{len(workers)}",
            concurrency=concurrency,
            env=env,
        )
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy, and return that; fail the test if not."""
    result = None

    def truthy() -> bool:
        nonlocal result
        result = check()
        return bool(result)

    try:
        devstack.wait_until(truthy, timeout_s, what)
    except RuntimeError as e:
        pytest.fail(str(e))
    return result


def counting_shim(directory: Path, real: Path) -> Path:
    """A stand-in for the command `real`, in `directory` (to put first on PATH) under the
    same name, that counts its calls and runs the real one; returns the count file."""
    directory.mkdir()
    calls = directory / "calls"
    calls.touch()
    shim = directory / real.name
    shim.write_text(f'#!/bin/sh\necho x >> {calls}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    return calls


ROOT = Path(__file__).resolve().parents[1]


class LocalSlurm:
    """The private one-node Slurm that scripts/slurm-local runs, for the Slurm tests."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.conf = directory / "slurm.conf"

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / "slurm-local"), "--dir", str(self.directory), *args],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str) -> str:
        """A Slurm client command against this cluster (squeue, scontrol...)."""
        return subprocess.run(list(argv), env=self.env(), capture_output=True, text=True,
                              timeout=60, check=True).stdout  # fmt: skip


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    """Slurm for the session. Skips when Slurm cannot start here, except in CI
    (CI=true), where that is a failure."""
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    started = cluster.command("start")
    if started.returncode != 0:
        why = f"Slurm cannot start here: {(started.stderr or started.stdout).strip()[-800:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    yield cluster
    cluster.command("stop", "--cancel-jobs")
