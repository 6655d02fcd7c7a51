"""The Kubernetes backend against a real cluster, for those who have one.

Runs only with ``JOBGATE_K8S_E2E=1`` and ``KUBECONFIG`` set. The account needs
deploy/kubernetes/rbac.yaml's rights in ``JOBGATE_K8S_NAMESPACE`` (default
"default"); images are pulled from ``JOBGATE_K8S_IMAGE`` (default busybox:1.36).
``JOBGATE_K8S_TIMEOUT_S`` bounds each job, image pull included (300).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from jobgate.client import Gateway, JobSpec, JobStatus
from tests.support.profiles import write_profile
from tests.support.waiting import wait_for
from tests.support.workers import WorkerFactory

TIMEOUT_S = float(os.environ.get("JOBGATE_K8S_TIMEOUT_S", "300"))

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("JOBGATE_K8S_E2E") != "1" or not os.environ.get("KUBECONFIG"),
        reason="needs a real cluster: JOBGATE_K8S_E2E=1 and KUBECONFIG",
    ),
    pytest.mark.timeout(3 * TIMEOUT_S + 120),
]


@pytest.fixture
def cluster_profile(tmp_path: Path) -> Path:
    data: dict[str, Any] = {
        "name": "realk8s",
        "backend": "kubernetes",
        "kubernetes": {
            "namespace": os.environ.get("JOBGATE_K8S_NAMESPACE", "default"),
            "image": os.environ.get("JOBGATE_K8S_IMAGE", "busybox:1.36"),
            "kubeconfig": os.environ["KUBECONFIG"],
        },
        "defaults": {"resources": {"memory_mb": 64, "walltime_s": 600}},
        "poll_interval_min_s": 2,
        "poll_interval_max_s": 10,
    }
    return write_profile(tmp_path, data)


def test_success_failure_and_logs_on_a_real_cluster(
    gateway: Gateway, cluster_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(cluster_profile)
    ok = gateway.submit(JobSpec(name="ok", command="echo hello from kubernetes"), "realk8s")
    bad = gateway.submit(JobSpec(name="bad", command="exit 3"), "realk8s")
    assert ok.wait(timeout_s=TIMEOUT_S).status is JobStatus.SUCCEEDED
    assert "".join(ok.logs()) == "hello from kubernetes\n"
    failed = bad.wait(timeout_s=TIMEOUT_S)
    assert (failed.status, failed.exit_code) == (JobStatus.FAILED, 3)


def test_bad_image_and_cancel_on_a_real_cluster(
    gateway: Gateway, cluster_profile: Path, start_worker: WorkerFactory
) -> None:
    start_worker(cluster_profile)
    missing = gateway.submit(
        JobSpec(name="img", command="true", image="jobgate.invalid/none:0"), "realk8s"
    )
    record = missing.wait(timeout_s=TIMEOUT_S)
    assert record.status is JobStatus.FAILED
    assert (record.reason or "").startswith(("ErrImagePull", "ImagePullBackOff"))
    long = gateway.submit(JobSpec(name="long", command="sleep 3000"), "realk8s")
    wait_for(lambda: long.status() is JobStatus.RUNNING, timeout_s=TIMEOUT_S, what="running")
    assert long.cancel(timeout_s=TIMEOUT_S).status is JobStatus.CANCELLED
