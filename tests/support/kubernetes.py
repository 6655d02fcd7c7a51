"""Kubernetes for the tests: profiles and kubectl against the API server emulator
(tests/emulators/kubernetes, package kubeemu), and the contract harness, whose emulated
kubelet runs each Job's pod command as a local process (`start_processes`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, ClassVar

from jobgate.client import Job, JobStatus
from tests.emulators.kubernetes.kubeemu import KubeApiServer
from tests.support.harness import BackendHarness, OnScheduler, Vanished
from tests.support.profiles import FAST_POLLING, write_profile
from tests.support.waiting import TIMEOUT_S, wait_for

NAMESPACE = "jobs"
CLUSTER = "k8sc"
#: The path of the batched status query: one labelled list of Jobs per poll.
JOB_LIST = rf"/namespaces/{NAMESPACE}/jobs$"


def k8s_profile(tmp_path: Path, api: KubeApiServer, **overrides: Any) -> Path:
    """The `k8sc` profile: namespace jobs, image busybox:1.36, polling every 0.5 s;
    `kubernetes={...}` updates its kubernetes block."""
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    data: dict[str, Any] = {
        "name": CLUSTER,
        "backend": "kubernetes",
        "kubernetes": {
            "namespace": NAMESPACE,
            "image": "busybox:1.36",
            "kubeconfig": str(kubeconfig),
            "image_error_grace_s": 1,
            "request_timeout_s": 10,
        },
        **FAST_POLLING,
    }
    return write_profile(tmp_path, data, **overrides)


def kubectl(api: KubeApiServer, tmp_path: Path, *args: str) -> str:
    """Real kubectl against the emulator, as an operator would run it."""
    kubeconfig = api.write_kubeconfig(tmp_path / "operator-kubeconfig", namespace=NAMESPACE)
    cache = ["--cache-dir", str(tmp_path / "kube-cache")]
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *cache, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def created(api: KubeApiServer, job_id: str) -> str:
    """Wait for the Job of a jobgate job to exist; its name."""
    name = f"jobgate-{job_id}"
    wait_for(lambda: api.job(NAMESPACE, name), timeout_s=TIMEOUT_S, what=f"Job {name}")
    return name


class KubeJob(OnScheduler):
    """A jobgate job's batch/v1 Job and its pods."""

    def __init__(self, api: KubeApiServer, name: str) -> None:
        self.api = api
        self.name = name

    def running(self) -> bool:
        pods = self.api.pods(NAMESPACE, job_name=self.name)
        return any(pod.get("status", {}).get("phase") == "Running" for pod in pods)

    def assert_stopped(self) -> None:
        wait_for(
            lambda: (
                self.api.job(NAMESPACE, self.name) is None
                and not self.api.pods(NAMESPACE, job_name=self.name)
            ),
            what="Job and pods deleted",
        )
        deletes = self.api.requests("DELETE", rf"/jobs/{self.name}$")
        assert [r.param("propagationPolicy") for r in deletes] == ["Background"]


class KubernetesHarness(BackendHarness):
    """The API server emulator with real processes for pods; the emulator's request log
    counts the lists of Jobs."""

    name = "kubernetes"
    cluster = CLUSTER
    exit_3_reason = "BackoffLimitExceeded (exit code 3)"
    lost_reason = "deleted outside jobgate"
    status_before_lost = JobStatus.RUNNING
    array_first_index = None
    streams_apart = False
    crowd_logs_every = 25  # a pod's log costs a list of pods and a log read
    # Each finished job's output tail is one more such read, inside the poll step: the
    # hundred at once stall the chain for seconds. Tails are not what is measured here
    # (test_kubernetes_e2e.py keeps them).
    crowd_settings: ClassVar[dict[str, Any]] = {"kubernetes": {"output_tail_bytes": 0}}

    def __init__(self, api: KubeApiServer, **common: Any) -> None:
        super().__init__(**common)
        self.api = api

    def profile(self, **settings: Any) -> Path:
        return k8s_profile(self.tmp_path, self.api, **settings)

    def on_scheduler(self, job: Job) -> OnScheduler:
        return KubeJob(self.api, created(self.api, job.id))

    def vanished(self) -> Vanished:
        """A running job whose Job an operator deletes with kubectl."""
        self.start()
        job = self.submit_named("gone", "sleep 600")
        wait_for(lambda: job.status() is JobStatus.RUNNING, what="job running")
        kubectl(self.api, self.tmp_path, "delete", "job", f"jobgate-{job.id}", "-n", NAMESPACE)
        return Vanished(lost=job)

    def status_calls(self) -> int:
        return len(self.api.requests("GET", JOB_LIST))
