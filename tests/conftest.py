"""Fixtures: a real redis-server on a free loopback port, real workers as subprocesses,
the private Slurm, the LSF emulator and a real S3 server (SeaweedFS). Helpers live in
tests/support.

Each test gets its own tenant, so its keys, queues and Celery traffic are apart
from every other test's, on one Redis started for the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobgate.client import Gateway
from jobgate.workers.backends.local_processes import JobProcesses, end_jobs
from scripts import devstack
from tests.emulators.kubernetes.kubeemu import KubeApiServer
from tests.support.harness import BackendHarness
from tests.support.kubernetes import NAMESPACE, KubernetesHarness
from tests.support.local import LocalHarness, kill_jobs, write_local_profile
from tests.support.lsf import LsfEmulator, LsfHarness
from tests.support.s3 import S3Bucket, bucket_on, delete_bucket
from tests.support.slurm import LocalSlurm, SlurmHarness
from tests.support.workers import ProfileFactory, WorkerFactory


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.RedisServer]:
    server = devstack.RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: devstack.RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.S3Server]:
    """SeaweedFS for the session (one per xdist process, on ports of its own), ~3 s to
    start. A test that stops or restarts it must leave it running."""
    server = devstack.S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: devstack.S3Server) -> Iterator[S3Bucket]:
    """A fresh bucket of the test's own on the session's S3 server, with its keys; deleted
    with its objects afterwards (each bucket is a SeaweedFS collection with volumes of its
    own, which deleting it frees)."""
    if not s3_server.running():
        s3_server.start()
    bucket = bucket_on(s3_server)
    yield bucket
    if not s3_server.running():  # a test that stopped the server leaves it running
        s3_server.start()
    delete_bucket(s3_server, bucket.bucket)


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
    kill_jobs(path)
    for cgroup_file in path.glob("*/*.cgroup"):
        cgroup = Path(cgroup_file.read_text())
        end_jobs([JobProcesses(cgroup_file.parent.name, None, cgroup)], grace_s=0)


@pytest.fixture
def make_profile(tmp_path: Path, work_dir: Path) -> ProfileFactory:
    """Write a local-backend profile (fast, fixed polling: `poll_s`) and return its path."""

    def make(name: str = "local", poll_s: float = 0.2, **overrides: Any) -> Path:
        return write_local_profile(tmp_path, work_dir, name, poll_s, **overrides)

    return make


@pytest.fixture
def start_worker(tmp_path: Path, redis_url: str, tenant: str) -> Iterator[WorkerFactory]:
    """Start `jobgate worker` subprocesses; all are killed at the end of the test.

    Killed, not stopped: nothing after a test needs its workers to shut down cleanly (a
    test of a clean stop stops its worker itself), and a clean stop of a prefork worker
    takes about 2 s (billiard's pool processes sleep 1 s on their way out), which over
    the suite's hundred-odd workers adds minutes. Each test has its own tenant, so what
    a killed worker leaves in Redis is seen by no other test."""
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
        worker.kill()


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


@pytest.fixture
def lsf(tmp_path: Path) -> Iterator[LsfEmulator]:
    """An emulated LSF cluster of the test's own (a minute lasts 2 s, limits in MB);
    every process it started is ended in teardown."""
    directory = tmp_path / "lsf-state"
    directory.mkdir()
    cluster = LsfEmulator(directory, LSF_EMULATOR_MINUTE_S="2", LSF_UNIT_FOR_LIMITS="MB")
    yield cluster
    cluster.stop()


# The backends' harnesses (tests/support/harness.py), for the contract suite and the fault
# tests. Each scheduler stand-in comes before `start_worker`, so that workers stop first.


@pytest.fixture
def local_backend(
    work_dir: Path, gateway: Gateway, start_worker: WorkerFactory, tmp_path: Path
) -> LocalHarness:
    return LocalHarness(work_dir, gateway=gateway, start_worker=start_worker, tmp_path=tmp_path)


@pytest.fixture
def slurm_backend(
    slurm: LocalSlurm, gateway: Gateway, start_worker: WorkerFactory, tmp_path: Path
) -> SlurmHarness:
    return SlurmHarness(slurm, gateway=gateway, start_worker=start_worker, tmp_path=tmp_path)


@pytest.fixture
def lsf_backend(
    lsf: LsfEmulator, gateway: Gateway, start_worker: WorkerFactory, tmp_path: Path
) -> LsfHarness:
    return LsfHarness(lsf, gateway=gateway, start_worker=start_worker, tmp_path=tmp_path)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> BackendHarness:
    """The harness of the backend a test is parametrized with, indirectly ("local",
    "slurm", "lsf", "kubernetes": the `<name>_backend` fixtures above)."""
    harness: BackendHarness = request.getfixturevalue(f"{request.param}_backend")
    return harness


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApiServer]:
    """The API server emulator, its kubelet running each pod's command as a process."""
    with KubeApiServer(tls=True, namespaces=(NAMESPACE,)) as api:
        pods = tmp_path / "pods"
        pods.mkdir()
        api.start_processes(work_dir=pods)
        yield api


@pytest.fixture
def kubernetes_backend(
    kube_api: KubeApiServer, gateway: Gateway, start_worker: WorkerFactory, tmp_path: Path
) -> KubernetesHarness:
    return KubernetesHarness(
        kube_api, gateway=gateway, start_worker=start_worker, tmp_path=tmp_path
    )
