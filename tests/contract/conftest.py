"""The `backend` fixture: each contract test runs once per backend, with that backend's
harness (tests/support/harness.py). Slurm's run only where the private Slurm starts
(the `slurm` fixture skips, or fails in CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobgate.client import Gateway
from tests.emulators.kubernetes.kubeemu import KubeApiServer
from tests.support.harness import BackendHarness
from tests.support.kubernetes import NAMESPACE, KubernetesHarness
from tests.support.local import LocalHarness
from tests.support.lsf import LsfEmulator, LsfHarness
from tests.support.slurm import LocalSlurm, SlurmHarness
from tests.support.workers import WorkerFactory

BACKENDS = ("local", "slurm", "lsf", "kubernetes")


# Each scheduler stand-in comes before `start_worker`, so that workers stop before it does.


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


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> BackendHarness:
    harness: BackendHarness = request.getfixturevalue(f"{request.param}_backend")
    return harness
